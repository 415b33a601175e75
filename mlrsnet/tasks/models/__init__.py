"""Models of the tasks: ``build_model(name, **kwargs)`` builds any registered architecture
(:mod:`mlrsnet.tasks.models.registry`); importing this package registers every one of them."""

from mlrsnet.tasks.models import (  # noqa: F401  (registers models)
    lm,
    mnist,
    mobilenetv2,
    preact_resnet,
    resnet,
    shufflenetv2,
    small,
    snn,
    wrn,
)
from mlrsnet.tasks.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "build_model", "register_model"]
