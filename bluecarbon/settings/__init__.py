"""Settings for the blue carbon ledger, read from the environment.

Development defaults are safe and need no server: SQLite in WAL mode with immediate
transactions, a file-system Celery broker and a signing key generated on first use under
``var/``. ``BLUECARBON_ENV=production`` turns the defaults off: the process refuses to start
without ``SECRET_KEY``, ``DATABASE_URL`` and its keys (a Celery worker also without the ledger's
checkpoint signing key, which web processes never read).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from bluecarbon import queues

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("BLUECARBON_VAR_DIR", BASE_DIR / "var"))

ENVIRONMENT = os.environ.get("BLUECARBON_ENV", "development")
if ENVIRONMENT not in {"development", "production"}:
    raise ImproperlyConfigured("BLUECARBON_ENV must be 'development' or 'production'")
PRODUCTION = ENVIRONMENT == "production"


def _required_in_production(name: str, default: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when BLUECARBON_ENV=production")
    return default


SECRET_KEY = _required_in_production("SECRET_KEY", "dev-only-insecure-secret-key-change-me")
DEBUG = os.environ.get("DEBUG", "0" if PRODUCTION else "1") == "1"
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h] or (
    [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"]
)

INSTALLED_APPS = [
    "bluecarbon.apps.AdminConfig",  # django.contrib.admin behind two-factor sign-in
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "bluecarbon.apps.StaticFilesConfig",  # django.contrib.staticfiles, minus build folders
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "django_ratelimit",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "ledger",
    "auctions",
    "listings",
    "portal",
]

MIDDLEWARE = [
    # First: it times everything after it (/metrics exports the histogram, per process).
    "ledger.metrics.RequestLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Two-factor sign-in (portal/two_factor.py): which device verified this session, then the
    # gate that keeps an unverified operator to enrolment.
    "django_otp.middleware.OTPMiddleware",
    "portal.two_factor.Gate",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",  # a limit hit answers 429 (RATELIMIT_VIEW)
    # A view's write the database gave up on against concurrent ones answers 503, not the 500
    # page (after LocaleMiddleware: the page is in the reader's language).
    "bluecarbon.contention.ContentionMiddleware",
]

# A Content-Security-Policy without inline script (or inline style) on every page of ours. The
# vendored Swagger UI and the Django admin render inline script of their own: left out.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/docs/", "/admin/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    },
}

# HTTPS in production: cookies only over TLS, HSTS, and a redirect for plain HTTP. Behind a
# TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=1 (the proxy must set X-Forwarded-Proto)
# and CSRF_TRUSTED_ORIGINS to the public origin(s).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PRODUCTION
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))
SECURE_SSL_REDIRECT = PRODUCTION and os.environ.get("SECURE_SSL_REDIRECT", "1") == "1"
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000")) if PRODUCTION else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if os.environ.get("SECURE_PROXY_SSL_HEADER") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# A load balancer's health probe and a Prometheus scrape speak plain HTTP to the node itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
X_FRAME_OPTIONS = "DENY"

# Sign-in and sign-up are rate-limited (django-ratelimit) per address and per user name, in the
# default cache: Django's Redis cache in production (atomic increments; the library does not
# list it, hence W001), one process's memory in development (E003: not shared, which one
# demo process does not need).
RATELIMIT_USE_CACHE = "default"
RATELIMIT_VIEW = "portal.views.too_many_requests"
if os.environ.get("RATELIMIT_IP_META_KEY"):  # behind a proxy, e.g. HTTP_X_REAL_IP
    RATELIMIT_IP_META_KEY = os.environ["RATELIMIT_IP_META_KEY"]
# The live rooms' polls (portal/throttle.py's poll_limited), one counter for room.json and
# clock.json: a tab polls every 1.5 s, 40 a minute, so a signed-in user may keep about seven
# rooms open at once; visitors behind one address (an office, a NAT) share theirs.
ROOM_POLL_RATES = {
    "user": os.environ.get("ROOM_POLL_RATE_USER", "300/m"),
    "address": os.environ.get("ROOM_POLL_RATE_ADDRESS", "1200/m"),
}
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"] + (
    [] if PRODUCTION else ["django_ratelimit.E003"]
)

ROOT_URLCONF = "bluecarbon.urls"
WSGI_APPLICATION = "bluecarbon.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "portal.context.portal",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = _required_in_production("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and os.environ.get(
        "DATABASE_PREPARED", "1"
    ) not in ("0", "false"):
        # Parameters sent apart from the query text (server-side binding) and a statement a
        # connection has run 5 times prepared: PostgreSQL then parses and plans each statement
        # of a hot path once per connection, and psycopg does not quote values into the text.
        # bench/bid_intake.py: 1.9 -> 1.1 ms of database CPU and 4.9 -> 4.0 ms of web CPU per
        # sealed bid. Behind a pooler in transaction mode without prepared-statement support
        # (PgBouncer before 1.21), set DATABASE_PREPARED=0.
        DATABASES["default"]["OPTIONS"] = {
            **DATABASES["default"].get("OPTIONS", {}),
            "server_side_binding": True,
            "prepare_threshold": 5,
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", str(VAR_DIR / "bluecarbon.sqlite3")),
            "OPTIONS": {
                # Writers take the database lock at BEGIN, so two writers never both read and
                # then fail to upgrade (SQLITE_BUSY mid-transaction); WAL lets readers go on.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not :memory:, so a real Celery worker process sees the test database.
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    }
# A connection kept between requests (CONN_MAX_AGE) is checked before a request first uses it
# and replaced if the server closed it (a restart, a failover, an idle timeout, a terminated
# backend); without the check that request fails with a 500.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:dashboard"
LOGOUT_REDIRECT_URL = "portal:home"
# Two-factor sign-in (portal/two_factor.py): the name authenticator apps show for the account.
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Blue carbon registry")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Django's default, stated because the API documents it: a larger body is refused (413) before
# it is read. A bulk request of 1,000 transfers is about 80 KB.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "ledger.apis.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "ledger.apis.schema.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "ledger.apis.auth.ApiKeyAuthentication",
        "ledger.apis.auth.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["ledger.apis.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's JSON parser, refusing bodies nested deeper than a bound (ledger/apis/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["ledger.apis.parsers.JSONParser"],
    "DEFAULT_THROTTLE_RATES": {
        "apikey": os.environ.get("API_RATE", "1200/min"),
        "anon": os.environ.get("API_ANON_RATE", "600/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Blue carbon registry API",
    "DESCRIPTION": "Registry integration API: projects, batches, holdings, transfers, "
    "retirements, the verifiable ledger. Quantities are decimal strings of tonnes CO2e.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Vendored Swagger UI and ReDoc (drf-spectacular-sidecar): no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "CircuitStateEnum": "ledger.webhooks.CIRCUIT_STATES",
        # Two fields named kind: an account's and a document's.
        "AccountKindEnum": ["holding", "buffer"],
        "DocumentKindEnum": "ledger.models.DocumentKind",
        "SealingEnum": "auctions.models.Sealing",
    },
}

# Production shares its caches (rate limits, verification progress) between its processes.
_required_in_production("REDIS_CACHE_URL", "")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if not os.environ.get("REDIS_CACHE_URL")
    else {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_CACHE_URL"],
    },
    # Shared by the web and the workers: a verification's progress, written by the worker that
    # runs it and read by the page that shows it. Redis when one is configured, else files.
    "progress": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["REDIS_CACHE_URL"],
    }
    if os.environ.get("REDIS_CACHE_URL")
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "progress"),
    },
}

# The portal's public address (scheme and host, e.g. https://registry.example.org), for the
# absolute links printed documents carry (a certificate's QR code, a calendar feed's URLs).
# Empty: the request's own scheme and host.
PORTAL_BASE_URL = os.environ.get("PORTAL_BASE_URL", "")

# --- Ledger ---------------------------------------------------------------------------------
# The checkpoint origin (C2SP tlog-checkpoint): a schema-less URL naming this log.
LEDGER_ORIGIN = os.environ.get("LEDGER_ORIGIN", "bluecarbon.localhost/ledger")
# The checkpoint key: a C2SP signed-note signer key ("PRIVATE+KEY+name+hash+key"). Only the
# checkpoint signer reads it (Celery workers, `manage.py ledger_checkpoint`), never a web
# process: keep it on the hosts that run workers only. In development it is generated on first
# use; in production a worker refuses to start without it (ledger/apps.py).
LEDGER_SIGNING_KEY_FILE = Path(
    os.environ.get("LEDGER_SIGNING_KEY_FILE", str(VAR_DIR / "keys" / "ledger-signing.key"))
)
# Every verifier key this log has signed with, one per line: old checkpoints keep verifying
# after a rotation. Verification trusts this file (and keys given on the command line), never
# keys read from the database.
LEDGER_VERIFIER_KEYS_FILE = Path(
    os.environ.get(
        "LEDGER_VERIFIER_KEYS_FILE", str(LEDGER_SIGNING_KEY_FILE.parent / "verifier-keys.txt")
    )
)
# Projects' documents (monitoring and verification reports), stored once each by SHA-256
# (ledger/documents.py). Back it up with the database: a row whose file is gone is refused at
# download, never served as something else.
DOCUMENTS_DIR = Path(os.environ.get("DOCUMENTS_DIR", str(VAR_DIR / "documents")))
# The key that authenticates each entry (HMAC; ledger/entry_auth.py), held by the application
# and not the database. Production requires it.
LEDGER_ENTRY_KEY_FILE = Path(
    _required_in_production(
        "LEDGER_ENTRY_KEY_FILE", str(LEDGER_SIGNING_KEY_FILE.parent / "entry-mac.key")
    )
)
# The checkpoint signer's own record of the last tree it signed (size, right edge, last entry
# hash, note): it signs only what extends that, computed from new entries alone, never from the
# database's stored tree. Beside the key by default ("" = there); keep it where the key is.
LEDGER_SIGNER_STATE_FILE = os.environ.get("LEDGER_SIGNER_STATE_FILE", "")
# The witnesses this log submits its checkpoints to, and how many must cosign: a C2SP
# tlog-policy file ("witness NAME VERIFIER-KEY URL" lines, groups, a quorum line). None: no
# witnesses (checkpoints are signed by the log alone).
LEDGER_WITNESS_POLICY_FILE = os.environ.get("LEDGER_WITNESS_POLICY_FILE", "")
# At most one checkpoint per this many seconds after writes (plus any asked for on demand).
LEDGER_CHECKPOINT_INTERVAL = float(os.environ.get("LEDGER_CHECKPOINT_INTERVAL", "1.0"))


def _default_verify_workers() -> int:
    """One per CPU this process may run on (at most four); none on one CPU, where workers
    could only slow verification down."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cpus or 1, 4) if (cpus or 1) > 1 else 0


# Worker processes ledger_verify uses on PostgreSQL for 50,000 entries or more
# (ledger/verify_parallel.py); 0 verifies in one process.
LEDGER_VERIFY_WORKERS = int(os.environ.get("LEDGER_VERIFY_WORKERS", _default_verify_workers()))

# --- Auctions -------------------------------------------------------------------------------
# The key-encryption key for auction private keys (32 bytes, hex). Generated in development;
# production refuses to start an auction without it.
AUCTION_KEK_FILE = Path(
    _required_in_production(
        "AUCTION_KEK_FILE", str(LEDGER_SIGNING_KEY_FILE.parent / "auction-kek.key")
    )
)
# The receipt key: a C2SP signed-note signer key of its own (named "<LEDGER_ORIGIN>/receipts")
# that web processes sign bid receipts with; not the checkpoint key. Generated in development;
# production refuses to start without it.
AUCTION_RECEIPT_KEY_FILE = Path(
    _required_in_production(
        "AUCTION_RECEIPT_KEY_FILE", str(VAR_DIR / "keys" / "receipt-signing.key")
    )
)
# Every verifier key receipts have been signed with, one per line (old keys stay after a
# rotation, so old receipts keep verifying); published at /api/v1/auctions/receipts/verifier-keys.
AUCTION_RECEIPT_VERIFIER_KEYS_FILE = Path(
    os.environ.get(
        "AUCTION_RECEIPT_VERIFIER_KEYS_FILE",
        str(AUCTION_RECEIPT_KEY_FILE.parent / "receipt-verifier-keys.txt"),
    )
)
# The verification report key: a C2SP signed-note signer key of its own (named
# "<LEDGER_ORIGIN>/verification-reports") that the workers running the auditor pages'
# verifications sign each run's report with (portal/reports.py); neither the checkpoint key nor
# the receipt key. Generated in development; in production the workers that run verifications
# need it (a run without it ends without a signed report, and logs why), the web does not.
VERIFICATION_REPORT_KEY_FILE = Path(
    os.environ.get(
        "VERIFICATION_REPORT_KEY_FILE", str(VAR_DIR / "keys" / "verification-report.key")
    )
)
# Every verifier key reports have been signed with; published at
# /audit/report-verifier-keys.txt.
VERIFICATION_REPORT_VERIFIER_KEYS_FILE = Path(
    os.environ.get(
        "VERIFICATION_REPORT_VERIFIER_KEYS_FILE",
        str(VERIFICATION_REPORT_KEY_FILE.parent / "verification-report-verifier-keys.txt"),
    )
)
# Bytes of full tiles each web process keeps to answer again without Django (0: off).
LEDGER_TILE_CACHE_BYTES = int(os.environ.get("LEDGER_TILE_CACHE_BYTES", str(32 << 20)))
# A bidder's standing bids in one auction (each up to 20 tiers): enough for any real demand
# schedule, and a bound on what one bidder can make the close and the clearing do.
AUCTION_MAX_BIDS_PER_BIDDER = int(os.environ.get("AUCTION_MAX_BIDS_PER_BIDDER", "50"))
# Bids are opened in parallel tasks of this many.
AUCTION_OPEN_CHUNK = int(os.environ.get("AUCTION_OPEN_CHUNK", "2000"))
# A step of the close-clear-settle pipeline that has not moved for this long is re-enqueued
# by beat (a lost message, a worker that died without its task being redelivered).
AUCTION_STALL_SECONDS = float(os.environ.get("AUCTION_STALL_SECONDS", "30"))
# A verification run that has reported no progress for this long is started again by beat.
VERIFICATION_STALL_SECONDS = float(os.environ.get("VERIFICATION_STALL_SECONDS", "300"))
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "auctions@bluecarbon.localhost")
# Mail goes through an outbox (ledger/mail.py): written with the change it tells of, sent after
# the commit. A relay's socket operation may take EMAIL_TIMEOUT seconds; a sender claims a mail
# for MAIL_CLAIM_SECONDS while it sends it (a sender that died lets it go when that runs out).
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))
MAIL_CLAIM_SECONDS = float(os.environ.get("MAIL_CLAIM_SECONDS", "120"))
MAIL_RETRY_BASE_SECONDS = float(os.environ.get("MAIL_RETRY_BASE_SECONDS", "30"))
MAIL_MAX_ATTEMPTS = int(os.environ.get("MAIL_MAX_ATTEMPTS", "8"))

# --- Celery ---------------------------------------------------------------------------------
_BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # Broadcast (remote control) messages; kombu's default is ./control in the cwd.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
        # The folder is polled; kombu's default of once a second makes every step of a
        # multi-task pipeline (an auction's close, opening chunks, clear, settle) wait for it.
        "polling_interval": 0.1,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {}
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One queue per kind of work (bluecarbon/queues.py; docs/operations.md), so that a backlog of
# one kind (webhooks to slow receivers, a slow witness) never holds up another (an auction's
# close, checkpoint signing). "" sends a kind to the default queue. A worker started without
# -Q consumes every queue (CELERY_TASK_QUEUES): one process can still do everything.
_QUEUES = queues.from_environment(os.environ)
CELERY_TASK_DEFAULT_QUEUE = _QUEUES["default"]
AUCTION_QUEUE = _QUEUES["auctions"]
# Only the workers on the one host holding the checkpoint key and the signer's state may take it.
LEDGER_CHECKPOINT_QUEUE = _QUEUES["checkpoints"]
LEDGER_WITNESS_QUEUE = _QUEUES["witnesses"]
WEBHOOK_QUEUE = _QUEUES["webhooks"]
CELERY_TASK_ROUTES = ("bluecarbon.queues.route",)
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in sorted(set(_QUEUES.values()) - {""})
]
CELERY_BEAT_SCHEDULE = {
    # A backstop: writes enqueue a checkpoint on commit; this covers a process that died
    # between its commit and the enqueue.
    "ledger-checkpoint": {"task": "ledger.tasks.ledger_checkpoint_task", "schedule": 10.0},
    # New entries into deliveries, and each endpoint with deliveries due (retries, a circuit's
    # cool-down over, a sender lost with its lease) to a sender. Writes also kick it.
    "webhooks-dispatch": {"task": "ledger.tasks.webhooks_dispatch_task", "schedule": 5.0},
    # Checkpoints the witnesses have not cosigned yet (a witness that was down, a lost task).
    "witness-submit": {"task": "ledger.tasks.witness_submit_task", "schedule": 10.0},
    # Opens and closes auctions whose time has come, and re-kicks stalled ones. Each auction
    # also gets an ETA task at its closing time; this is the backstop.
    "auctions-due": {"task": "auctions.tasks.auctions_due_task", "schedule": 2.0},
    # Listings past their closing time (each also gets an ETA task at it; this is the backstop).
    "listings-due": {"task": "listings.tasks.listings_due_task", "schedule": 5.0},
    "verification-runs-due": {
        "task": "portal.tasks.verification_runs_due_task",
        "schedule": 10.0,
    },
    "idempotency-expire": {
        "task": "ledger.tasks.idempotency_records_expire_task",
        "schedule": 3600.0,
    },
    # The outbox's mail that is due: retries after their backoff, mail whose sender died, a
    # send lost with its message. Commits that write mail also kick it.
    "mail-send": {"task": "ledger.tasks.mail_send_task", "schedule": 15.0},
}
if not PRODUCTION:
    # DEMO ONLY: bin/demo's trustees release their keys for its closed auctions
    # (auctions/demo.py). It does nothing without the demo trustees' seeds, which only
    # seed_demo makes; production does not even schedule it.
    CELERY_BEAT_SCHEDULE["demo-trustees-release"] = {
        "task": "auctions.tasks.demo_trustees_release_task",
        "schedule": 2.0,
    }

# --- Operations: /healthz and /metrics (docs/operations.md) ---------------------------------
# The queues Celery workers must serve: beat sends each a heartbeat (WORKER_HEARTBEAT_INTERVAL
# seconds apart), /healthz fails and operators and auditors see a banner when no worker has
# been heard from on one for HEALTH_WORKER_SILENCE_SECONDS, and /metrics reports each one's
# depth. By default every queue this file names; WORKER_QUEUES (comma-separated) overrides.
_named_queues = set(_QUEUES.values())
for _entry in CELERY_BEAT_SCHEDULE.values():
    _options = _entry.get("options")
    if isinstance(_options, dict):
        _named_queues.add(str(_options.get("queue", "")))
WORKER_QUEUES = [q for q in os.environ.get("WORKER_QUEUES", "").split(",") if q] or sorted(
    _named_queues - {""}
)
WORKER_HEARTBEAT_INTERVAL = float(os.environ.get("WORKER_HEARTBEAT_INTERVAL", "15"))
# When set, a worker running a heartbeat also writes the time (whole seconds since the epoch)
# to a file named after it (its node name before the "@") in this directory: a liveness signal
# read without Django, by bin/demo's watchdog, which restarts a worker silent for too long.
WORKER_HEARTBEAT_DIR = os.environ.get("WORKER_HEARTBEAT_DIR", "")
HEALTH_WORKER_SILENCE_SECONDS = float(os.environ.get("HEALTH_WORKER_SILENCE_SECONDS", "60"))
for _queue in WORKER_QUEUES:
    CELERY_BEAT_SCHEDULE[f"worker-heartbeat:{_queue}"] = {
        "task": "ledger.tasks.worker_heartbeat_task",
        "schedule": WORKER_HEARTBEAT_INTERVAL,
        "args": (_queue,),
        # One that waited longer than the silence is dropped: a backed-up queue is not made
        # longer by heartbeats, and its age already says what a late one would.
        "options": {"queue": _queue, "expires": HEALTH_WORKER_SILENCE_SECONDS},
    }
# The oldest entry no checkpoint covers may wait this long (checkpoints follow writes within
# LEDGER_CHECKPOINT_INTERVAL, and beat's backstop runs every 10 s).
HEALTH_CHECKPOINT_LAG_SECONDS = float(os.environ.get("HEALTH_CHECKPOINT_LAG_SECONDS", "60"))
# With a witness policy: the oldest checkpoint after the newest one meeting the quorum may wait
# this long (submission runs in Celery after each checkpoint and retries with backoff).
HEALTH_WITNESS_LAG_SECONDS = float(os.environ.get("HEALTH_WITNESS_LAG_SECONDS", "120"))
# /metrics answers loopback (without a proxy's forwarding header) and, when this is set, any
# client sending "Authorization: Bearer <METRICS_TOKEN>".
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Webhooks -------------------------------------------------------------------------------
# After writes, each process kicks the dispatcher (new entries into deliveries) at most once
# in this many seconds, delayed by as much: a delivery is made about this long after its
# entry while the webhooks queue keeps up (beat's backstop runs every 5 s). Each dispatch
# costs in proportion to the active endpoints.
WEBHOOK_DISPATCH_INTERVAL = float(os.environ.get("WEBHOOK_DISPATCH_INTERVAL", "2.0"))
WEBHOOK_RETRY_BASE_SECONDS = float(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS", "5"))
WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("WEBHOOK_MAX_ATTEMPTS", "8"))
# One delivery's HTTP exchange, at most (per socket operation); a sender claims the delivery
# for this long while it sends.
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "10"))
# Active endpoints one organization may have: each costs the webhook workers a share of their
# time, and one key with the read scope must not be able to take all of it.
WEBHOOK_MAX_ENDPOINTS = int(os.environ.get("WEBHOOK_MAX_ENDPOINTS", "10"))
# An endpoint whose deliveries failed this many times in a row has its circuit opened: nothing
# is sent to it for WEBHOOK_CIRCUIT_COOLDOWN_SECONDS, then one delivery probes it (ledger/
# webhooks.py). Its deliveries wait, pending.
WEBHOOK_CIRCUIT_FAILURES = int(os.environ.get("WEBHOOK_CIRCUIT_FAILURES", "5"))
WEBHOOK_CIRCUIT_COOLDOWN_SECONDS = float(os.environ.get("WEBHOOK_CIRCUIT_COOLDOWN_SECONDS", "60"))
# One sender task sends at most this many of an endpoint's deliveries, for at most this long
# (plus the one in flight), then makes way for the other endpoints' senders.
WEBHOOK_BATCH_SIZE = int(os.environ.get("WEBHOOK_BATCH_SIZE", "100"))
WEBHOOK_BATCH_SECONDS = float(os.environ.get("WEBHOOK_BATCH_SECONDS", "5"))
# An endpoint's sender holds its lease this long past its last sign of life; a sender lost
# with its worker (killed, its message lost) is replaced once the lease has run out.
WEBHOOK_LEASE_SECONDS = float(os.environ.get("WEBHOOK_LEASE_SECONDS", "60"))
# Receivers must be at public addresses (ledger/egress.py). "1" also lets them be on loopback:
# for tests and local development, whose receivers listen on 127.0.0.1. Never private,
# link-local or other internal addresses, and never in production, where loopback is the
# registry's own Redis, PostgreSQL and /metrics: a registrant's URL must not reach them.
WEBHOOK_ALLOW_LOOPBACK = os.environ.get("WEBHOOK_ALLOW_LOOPBACK", "0") == "1"
if WEBHOOK_ALLOW_LOOPBACK and PRODUCTION:
    raise ImproperlyConfigured(
        "WEBHOOK_ALLOW_LOOPBACK=1 is for tests and local development and is refused when "
        "BLUECARBON_ENV=production: it would let webhook deliveries reach this host's own "
        "services on loopback (Redis, PostgreSQL, /metrics). Unset it."
    )
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

VAR_DIR.mkdir(parents=True, exist_ok=True)
if CELERY_BROKER_URL.startswith("filesystem"):
    for sub in ("queue", "processed", "control"):
        (_BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
