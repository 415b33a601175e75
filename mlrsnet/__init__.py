"""mlrsnet: MLR-SNet (Shu et al., TPAMI 2022), meta-learned transferable LR schedules, and a lab of
LR-schedule baselines."""

from mlrsnet.net import MLRSNet, MLRSNetConfig, compute_gamma
from mlrsnet.schedules.scheduler import MLRSNetScheduler

__version__ = "0.1.0"
__all__ = ["MLRSNet", "MLRSNetConfig", "MLRSNetScheduler", "__version__", "compute_gamma"]
