# Makes conf/ importable as the package `mlrsnet.conf` (see pyproject.toml), so that a built wheel
# carries the Hydra configs and `hydra.main(config_path="pkg://mlrsnet.conf")` finds them.
