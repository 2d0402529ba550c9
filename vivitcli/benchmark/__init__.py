"""`vivit benchmark`: eager against SDPA attention — time per clip, peak memory, output difference — per
model, mode, dtype and batch size; and, on the user's own videos, where the time of a real run goes.

    runner.run_benchmark(...)  -> [rows.Row]        the measurement loop (one Row per configuration pair)
    measure.measure(config)    -> spec.Measurement  one configuration in this process
    worker.run_isolated(config)                     one configuration in a fresh process (CPU memory)
    report.to_table / to_json / to_csv              the output formats
    stages.time_stages(model, paths)                per-stage timing of the real pipeline
"""
