"""The progress bar of a fit (``CRF(progress_bar=True)``, ``fastcrf train --progress``).

One tqdm bar over the epochs / iterations, on stderr, its postfix the last loss (and
dev accuracy).  tqdm is an optional dependency (the ``progress`` extra): it is
imported only when a bar is asked for, and its absence is then an ImportError that
says what to install.
"""


def epoch_bar(total, algorithm):
    """A tqdm bar of ``total`` epochs (None: unknown, a counter).

    Raises
    ------
    ImportError
        When tqdm is not installed.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError("progress_bar=True needs tqdm: pip install tqdm (or "
                          "fastcrf[progress])") from None
    unit = "iter" if algorithm == "lbfgs" else "epoch"
    return tqdm(total=total, desc=f"fastcrf {algorithm}", unit=unit, leave=True,
                dynamic_ncols=True)


def bar_update(bar, entry):
    """Advance ``bar`` by one epoch, showing ``entry``'s loss (and dev accuracy)."""
    postfix = {"loss": f"{entry['loss']:.4g}"}
    if "dev_accuracy" in entry:
        postfix["dev_acc"] = f"{entry['dev_accuracy']:.4f}"
    bar.set_postfix(postfix, refresh=False)
    bar.update(1)
