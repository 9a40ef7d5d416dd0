"""Protocol emulators: each speaks one instrument model's own wire protocol, so the real drivers
can be tested exchange by exchange. Every emulator logs each message it received and sent
(:class:`~sim_backend.emulators.base.ExchangeLog`), and can inject faults (error replies, silence,
garbage, a dropped connection) on a chosen command."""
