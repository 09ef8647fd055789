"""The WAS core: weight transforms, their configuration, shadow weights and BatchNorm re-estimation."""

from __future__ import annotations

from wascompress.was.batchnorm import recalibrate_bn_
from wascompress.was.config import WASConfig
from wascompress.was.shadow import (
    ShadowWeight,
    apply_was_,
    check_seed,
    dom_draws,
    freeze_dom_,
    has_was,
    load_plain_state_dict,
    plain_state_dict,
    resample_,
    select_layers,
    set_draws_,
    shadow_mode,
    strip_was_,
    use_dom_,
    use_pw_,
    was_config,
    was_layers,
)

__all__ = [
    "ShadowWeight",
    "WASConfig",
    "apply_was_",
    "check_seed",
    "dom_draws",
    "freeze_dom_",
    "has_was",
    "load_plain_state_dict",
    "plain_state_dict",
    "recalibrate_bn_",
    "resample_",
    "select_layers",
    "set_draws_",
    "shadow_mode",
    "strip_was_",
    "use_dom_",
    "use_pw_",
    "was_config",
    "was_layers",
]
