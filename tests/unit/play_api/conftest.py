"""The Play Developer API client's tests: the stand-in (``api``) and clients of it
(``make_client``, ``client``), by the names these tests use."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from refundguard.playstore.api import PlayApiClient
from refundguard_dev.fake_play_api import FakePlayApi


@pytest.fixture
def api(play_api: FakePlayApi) -> FakePlayApi:
    return play_api


@pytest.fixture
def make_client(make_play_client: Callable[..., PlayApiClient]) -> Callable[..., PlayApiClient]:
    return make_play_client


@pytest.fixture
def client(play_client: PlayApiClient) -> PlayApiClient:
    return play_client
