"""The App Store Server API client's tests: the stand-ins of both environments (``key``,
``sandbox``, ``production``) and clients of them (``make_client``, ``client``), by the names
these tests use."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from refundguard.appstore.api import AppStoreApiClient
from refundguard_dev.fake_appstore_api import ApiKey, FakeAppStoreApi


@pytest.fixture
def key(apple_api_key: ApiKey) -> ApiKey:
    return apple_api_key


@pytest.fixture
def sandbox(appstore_sandbox: FakeAppStoreApi) -> FakeAppStoreApi:
    return appstore_sandbox


@pytest.fixture
def production(appstore_production: FakeAppStoreApi) -> FakeAppStoreApi:
    return appstore_production


@pytest.fixture
def make_client(
    make_apple_client: Callable[..., AppStoreApiClient],
) -> Callable[..., AppStoreApiClient]:
    return make_apple_client


@pytest.fixture
def client(make_apple_client: Callable[..., AppStoreApiClient]) -> AppStoreApiClient:
    return make_apple_client()
