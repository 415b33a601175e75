"""One module per schedule, each declaring ``SCHEDULE`` (:class:`mlrsnet.schedules.spec.Schedule`);
:mod:`mlrsnet.schedules.registry` finds them. Adding a schedule is adding a module here."""
