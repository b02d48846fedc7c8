"""``make run``'s stand-ins of the two store APIs, seeded with demo data, and the settings
that point the local functions at them: the Play Developer API (a service-account key file under
``.run/`` whose ``token_uri`` is the stand-in's, never application default credentials) and the
App Store Server API (an In-App Purchase key generated under ``.run/``, answers signed with the
local test PKI). Nothing here reaches Google or Apple."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from . import play_api_data as data
from .apple_pki import APP_APPLE_ID
from .demo_tenants import DEMO_TENANTS
from .fake_appstore_api import FakeAppStoreApi, new_api_key
from .fake_kms import DEFAULT_KEY, FakeKms
from .fake_play_api import DEFAULT_ACCOUNT, FakePlayApi
from .local import APPLE_BUNDLE_ID, APPLE_ROOT_DER, RUN_DIR, local_apple_pki

PLAY_KEY_FILE = RUN_DIR / "play-api-service-account.json"
APPLE_KEY_FILE = RUN_DIR / "apple-api-key.p8"
#: The demo purchase the banner's recipes use, and its order.
DEMO_TOKEN = "demo-purchase-token-0001"
DEMO_ORDER = "GPA.3301-0000-0000-00001"
#: A purchase no notification has mentioned: found through orders.get.
UNSEEN_TOKEN = "demo-purchase-token-0002"
UNSEEN_ORDER = "GPA.3301-0000-0000-00002"
#: A subscription whose first renewal is the latest order: void the original order to see it kept.
DEMO_SUBSCRIPTION = "demo-subscription-token-0001"
SUBSCRIPTION_FIRST_ORDER = "GPA.3302-0000-0000-00003"
SUBSCRIPTION_LATEST_ORDER = "GPA.3302-0000-0000-00003..0"
#: A purchase refunded an hour ago whose voided-purchase notification never arrived.
MISSED_TOKEN = "demo-purchase-token-0003"
MISSED_ORDER = "GPA.3301-0000-0000-00004"
#: An Apple order (Look Up Order ID answers Production only) and its transaction.
APPLE_ORDER = "MQ3ZRTV4X1"
APPLE_TRANSACTION = "2000000000000001"
#: Each demo purchase's order, so that a notification and the stand-in name the same order (a void
#: seen through RTDN and through the reconciler is then one event).
DEMO_ORDERS = {
    DEMO_TOKEN: DEMO_ORDER,
    UNSEEN_TOKEN: UNSEEN_ORDER,
    MISSED_TOKEN: MISSED_ORDER,
    DEMO_SUBSCRIPTION: SUBSCRIPTION_LATEST_ORDER,
    **{demo.token: demo.order for demo in DEMO_TENANTS},
}


def demo_order_id(token: str) -> str:
    """The demo purchase's order id; for any other token one of its own, the same every time
    (``GPA.`` and digits from its SHA-256), so a resent void is the same void."""
    if token in DEMO_ORDERS:
        return DEMO_ORDERS[token]
    digits = str(int(hashlib.sha256(token.encode()).hexdigest(), 16))[:17].rjust(17, "0")
    return f"GPA.{digits[:4]}-{digits[4:8]}-{digits[8:12]}-{digits[12:]}"


#: google-auth must never look anything up at Google from a local function.
NO_GOOGLE_LOOKUPS = {
    "GOOGLE_SDK_EXPERIMENTAL_PYTHON_REGIONAL_ACCESS_BOUNDARY_LOOKUP_ENABLED": "false"
}


@dataclass
class LocalStores:
    play: FakePlayApi
    apple: FakeAppStoreApi
    play_env: dict[str, str]  # the Play function's and the admin function's Play API settings
    apple_env: dict[str, str]  # the admin function's App Store Server API settings
    #: Each demo tenant's App Store Server API key: tenant id -> (key id, issuer id).
    tenant_keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: The Cloud KMS stand-in that seals tenants' Apple keys, and the settings that reach it
    #: (with ``play_env``'s key file as the credentials, which it trusts).
    kms: FakeKms | None = None
    kms_env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.play.stop()
        self.apple.stop()
        if self.kms is not None:
            self.kms.stop()


def seed_play(api: FakePlayApi, package: str = data.PACKAGE) -> None:
    for token, order_id in ((DEMO_TOKEN, DEMO_ORDER), (UNSEEN_TOKEN, UNSEEN_ORDER)):
        api.add_product_purchase(package, token, data.product_purchase(order_id=order_id))
        api.add_order(package, data.order(order_id, token))
    # A refund no notification announced: the reconciler's first run catches it.
    for token, order_id in ((MISSED_TOKEN, MISSED_ORDER),):
        api.add_product_purchase(package, token, data.product_purchase(order_id=order_id))
        voided_ms = int(time.time() * 1000) - 3_600_000
        api.add_voided(package, data.voided(token, order_id, voided_ms=voided_ms))
    latest = data.subscription(latest_order_id=SUBSCRIPTION_LATEST_ORDER)
    api.add_subscription(package, DEMO_SUBSCRIPTION, latest)
    api.add_order(
        package,
        data.order(
            SUBSCRIPTION_FIRST_ORDER, DEMO_SUBSCRIPTION, product_id=data.MONTHLY, subscription=True
        ),
    )
    for demo in DEMO_TENANTS:  # each demo tenant's purchase, in its own package
        api.add_product_purchase(
            demo.play_package, demo.token, data.product_purchase(order_id=demo.order)
        )
        api.add_order(demo.play_package, data.order(demo.order, demo.token))


def seed_apple(api: FakeAppStoreApi) -> None:
    api.add_transaction(original_transaction_id=APPLE_TRANSACTION, bundle_id=APPLE_BUNDLE_ID)
    api.add_order(APPLE_ORDER, APPLE_TRANSACTION)
    for demo in DEMO_TENANTS:
        api.add_transaction(original_transaction_id=demo.transaction, bundle_id=demo.bundle_id)


def register_tenant_keys(api: FakeAppStoreApi) -> dict[str, tuple[str, str]]:
    """One App Store Server API key per demo tenant (its own Apple team: its own issuer id),
    written under ``.run/`` for the tenant's key upload (``PUT /tenants/{id}/apple-key``):
    tenant id -> (key id, issuer id)."""
    keys = {}
    for demo in DEMO_TENANTS:
        key = api.register_key(new_api_key(demo.apple_key_id))
        key.write_p8(demo.apple_key_file)
        keys[demo.id] = (key.key_id, key.issuer_id)
    return keys


#: The one account the functions call the Play API as (PLAY_API_SERVICE_ACCOUNT), as deployed: the
#: key file's account impersonates it at the stand-in's IAM generateAccessToken.
LOCAL_PLAY_API_ACCOUNT = "refundguard-play-api@demo-refundguard.iam.gserviceaccount.com"


def start_local_stores(play_port: int, apple_port: int, package: str = data.PACKAGE) -> LocalStores:
    """Both stand-ins on their ports, seeded, with the settings that reach them."""
    RUN_DIR.mkdir(exist_ok=True)
    play = FakePlayApi(play_port, packages=[package, *(d.play_package for d in DEMO_TENANTS)])
    play.write_service_account_key(PLAY_KEY_FILE)
    play.add_service_account(LOCAL_PLAY_API_ACCOUNT, token_creators=[DEFAULT_ACCOUNT])
    seed_play(play, package)
    bundle_ids = [APPLE_BUNDLE_ID, *(d.bundle_id for d in DEMO_TENANTS)]
    apple = FakeAppStoreApi(
        apple_port, environment="Production", bundle_ids=bundle_ids, pki=local_apple_pki()
    )
    key = apple.register_key(new_api_key("RGLOCAL001"))
    key.write_p8(APPLE_KEY_FILE)
    tenant_keys = register_tenant_keys(apple)
    seed_apple(apple)
    # The deployment's one service account: the Play API's, and the one KMS lets seal and open.
    kms = FakeKms()
    kms.trust_key_file(PLAY_KEY_FILE)
    play.start()
    apple.start()
    kms.start()
    kms_env = {"TENANT_KEYS_KMS_KEY": DEFAULT_KEY, "TENANT_KEYS_KMS_BASE_URL": kms.url}
    play_env = {
        "PLAY_DEVELOPER_API": "on",
        "PLAY_API_BASE_URL": play.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(PLAY_KEY_FILE),
        "PLAY_API_SERVICE_ACCOUNT": LOCAL_PLAY_API_ACCOUNT,
        **NO_GOOGLE_LOOKUPS,
    }
    apple_env = {
        "APPLE_API_KEY_ID": key.key_id,
        "APPLE_API_ISSUER_ID": key.issuer_id,
        "APPLE_API_PRIVATE_KEY": APPLE_KEY_FILE.read_text(),
        "APPLE_API_BASE_URL": apple.url,
        "APPLE_API_SANDBOX_BASE_URL": apple.url,
        "APPLE_BUNDLE_IDS": APPLE_BUNDLE_ID,
        "APPLE_APP_APPLE_ID": str(APP_APPLE_ID),
        "APPLE_ROOT_CERTS": str(APPLE_ROOT_DER),
    }
    return LocalStores(play, apple, play_env, apple_env, tenant_keys, kms, kms_env)
