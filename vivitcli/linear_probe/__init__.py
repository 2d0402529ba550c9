"""Linear probes: teach a backbone new labels from folders of example clips (`vivit probe train|eval`).

    import vivitcli.linear_probe
    result = vivitcli.linear_probe.train("clips/", model="demo", out="my-probe/")   # clips/<label>/*.mp4
    vivitcli.load_model("my-probe/")                                        # a classifier like any other

Modules: dataset (class folders, split), cache (embeddings on disk), embeddings (the batch job + cache),
fit (L2 logistic regression, strength sweep), metrics, model (the probe folder and ProbeModel), run
(train / evaluate). Names resolve lazily so `import vivitcli.linear_probe` stays cheap.
"""

from __future__ import annotations

from vivitcli._lazy import lazy_exports

_LAZY = {
    "train": "vivitcli.linear_probe.run",
    "evaluate": "vivitcli.linear_probe.run",
    "TrainResult": "vivitcli.linear_probe.run",
    "EvalResult": "vivitcli.linear_probe.run",
    "ProbeModel": "vivitcli.linear_probe.model",
    "load_probe": "vivitcli.linear_probe.model",
    "is_probe_dir": "vivitcli.linear_probe.model",
    "Head": "vivitcli.linear_probe.fit",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports("vivitcli.linear_probe", _LAZY, globals())

