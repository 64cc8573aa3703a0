"""The committed AsyncAPI documents are those the FastStream apps generate."""

from __future__ import annotations

import json

import pytest

from services.adapters.kafka.asyncapi import ASYNCAPI_DIR, render_all

pytestmark = pytest.mark.unit


def test_the_committed_asyncapi_documents_are_up_to_date() -> None:
    for name, text in render_all().items():
        assert (ASYNCAPI_DIR / f"{name}.json").read_text() == text, "run `mandat asyncapi`"


def test_each_document_shows_the_inputs_decisions_and_rejections_with_contract_schemas() -> None:
    for name, text in render_all().items():
        document = json.loads(text)
        addresses = {c["address"] for c in document["channels"].values()}
        assert "rsi.referentiel.v1" in addresses
        assert f"rsi.rejets.{name}.v1" in addresses
        assert "CotisationDueEvent" in document["components"]["schemas"]
        assert "DecisionEnAttenteEvent" in document["components"]["schemas"]
