"""``[carriers]``: the credential key ring, breaker thresholds, timeouts, offer lifetime.

The key ring comes from ``key_file`` (TOML: ``active = "k2"`` and a ``[keys]`` table of
id = base64url 32-byte key) or from ``keys`` (``"k1:<b64>,k2:<b64>"``), which the environment
sets as ``LOCKHUB_CLOUD_CARRIERS__KEYS``; ``active_key`` names the key new seals use.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, model_validator

from cloud_sync.protocol.tomlconfig import ConfigPath, FieldError, Identifier, Section

# Five failures in a minute is a carrier in trouble, not a blip; a 30 s cool-down lets a
# restarting API come back before one probe call tests it.
DEFAULT_BREAKER_THRESHOLD = 5
DEFAULT_BREAKER_WINDOW_S = 60.0
DEFAULT_BREAKER_COOLDOWN_S = 30.0
# A rate shop answers a person waiting at a screen: 5 s per carrier bounds the whole shop.
DEFAULT_QUOTE_TIMEOUT_S = 5.0
# Booking, status and cancel calls run in the background or behind a button: a little longer.
DEFAULT_CALL_TIMEOUT_S = 15.0
# Carriers hold a quoted price for 10-30 minutes; 15 minutes is inside what most promise.
DEFAULT_OFFER_LIFETIME_S = 900.0
# Three tries ride out a blip; more would only queue load on a carrier that is struggling.
DEFAULT_RETRY_ATTEMPTS = 3


class CarriersSection(Section):
    """``[carriers]``."""

    key_file: ConfigPath | None = None
    keys: SecretStr | None = None
    active_key: Identifier | None = None
    breaker_threshold: int = Field(default=DEFAULT_BREAKER_THRESHOLD, ge=1, le=1000)
    breaker_window_s: float = Field(default=DEFAULT_BREAKER_WINDOW_S, gt=0, le=86_400)
    breaker_cooldown_s: float = Field(default=DEFAULT_BREAKER_COOLDOWN_S, gt=0, le=86_400)
    quote_timeout_s: float = Field(default=DEFAULT_QUOTE_TIMEOUT_S, gt=0, le=120)
    call_timeout_s: float = Field(default=DEFAULT_CALL_TIMEOUT_S, gt=0, le=300)
    offer_lifetime_s: float = Field(default=DEFAULT_OFFER_LIFETIME_S, gt=0, le=86_400)
    retry_attempts: int = Field(default=DEFAULT_RETRY_ATTEMPTS, ge=1, le=10)

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if self.key_file is not None and self.keys is not None:
            raise FieldError(("keys",), "set key_file or keys, not both")
        if self.keys is not None and self.active_key is None:
            raise FieldError(("active_key",), "is required when keys is set")
        return self
