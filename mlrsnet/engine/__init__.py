"""The engine: turns a validated config into runs, trains them through the one loop, and keeps their
outputs safe (run directories, resume, records). Apps (:mod:`mlrsnet.train`, :mod:`mlrsnet.transfer`,
:mod:`mlrsnet.bench`, ...) sit above it; the domain (net, tasks, schedules, meta) below."""
