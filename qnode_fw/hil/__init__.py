"""Hardware-in-the-loop benches: one suite of checks for a lab bench and for CI.

- :mod:`.bench` - the bench file (instruments, wiring, operating points, checks, simulation);
- :mod:`.levels` - how much a check may change the hardware (0 read only .. 3 emits light);
- :mod:`.checks` - the checks and their plan; :mod:`.measure` the measurements they share;
  :mod:`.conformance` runs the driver interfaces' conformance checks on bench instruments;
- :mod:`.rig` - lab, simulated and dry-run rigs; :mod:`.emulated` the emulated rig (real drivers,
  protocol emulators mirrored into one physical World, :mod:`.physics`);
- :mod:`.session` - a run's instruments, calibration and results; :mod:`.runner` one bench run;
  :mod:`.report` the bench report and the calibration YAML.

``qnode hil BENCH.yaml`` (:mod:`qnode_fw.cli.cmd_hil`) and ``pytest hil --bench BENCH.yaml`` run
the same checks through :class:`.runner.BenchRun`. See docs/hil.md.
"""
