"""souk_bench: the benchmark suite behind `make bench` (bench/run is its entry point).

Modules, in the order a run uses them: config (paths, knobs, aims, the log line),
procs (everything started is stopped on exit), net (ports, HTTP), stack (the souk
platform under test), peers (nginx and the Express peer), scenarios (the wrk
scenarios and the data they need), measurement (wrk, CPU, memory, profiles),
report (bench/RESULTS.md), main (the run, step by step).
"""
