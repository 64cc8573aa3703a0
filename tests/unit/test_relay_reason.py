"""The relay's stall reason names the failure, never the data of a record."""

from __future__ import annotations

from aiokafka.errors import MessageSizeTooLargeError

from contracts.nir import make_nir
from services.adapters.kafka.relay import _reason


def test_the_reason_is_the_error_class_and_its_message() -> None:
    assert _reason(MessageSizeTooLargeError()) == "MessageSizeTooLargeError: [Error 10]"
    assert _reason(TimeoutError("Kafka did not acknowledge a batch in 30 s")) == (
        "TimeoutError: Kafka did not acknowledge a batch in 30 s"
    )


def test_quoted_values_and_long_numbers_are_blanked_out() -> None:
    nir = make_nir("1850175123456")
    reason = _reason(ValueError(f'invalid input syntax for type bigint: "{nir}" at {nir}'))
    assert nir not in reason and nir[:13] not in reason
    assert reason.startswith("ValueError: invalid input syntax for type bigint:")
    reason = _reason(RuntimeError(f"key ('{'x' * 50}') is bad"))
    assert "xxxx" not in reason


def test_the_reason_is_bounded() -> None:
    assert len(_reason(RuntimeError("word " * 1000))) <= len("RuntimeError: ") + 160
