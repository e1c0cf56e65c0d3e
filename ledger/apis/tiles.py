"""The log in C2SP formats: static tiles (tlog-tiles) and proof files (tlog-proof).

Under the prefix ``/api/v1/ledger/tlog`` (a tlog-tiles log's *prefix*; its origin line is
``LEDGER_ORIGIN``):

* ``checkpoint``: the latest checkpoint with its witness cosignatures (cached a few seconds);
* ``tile/<L>/<N>[.p/<W>]``: hash tiles, 256 hashes of RFC 9162 level 8L each (full tiles are
  immutable; partial ones are cached briefly, as the specification allows deleting them);
* ``tile/entries/<N>[.p/<W>]`` and, for a bundle that holds an entry over 65,535 bytes,
  ``tile/entries-u32/<N>[.p/<W>]`` (docs/ledger-format.md §8): entry bundles, gzip-compressed
  when the client accepts it;
* ``verifier-keys`` and ``witness-policy``: what to pin, published beside the log (a key first
  seen here proves nothing: compare it with a copy obtained out of band).

No key is needed and nothing is throttled: a mirror fetches every tile once, and caches and CDNs
serve the rest. These are plain Django views (no DRF): a tile is one indexed range read.

``GET /api/v1/ledger/entries/{seq}/proof`` is one entry as a tlog-proof file: the entry's exact
bytes in the ``extra`` line, its inclusion proof in the latest checkpoint, and that checkpoint
with its cosignatures; ``bluecarbon-audit proof`` verifies it offline.
"""

from __future__ import annotations

from bluecarbon_audit.proof import TlogProof
from bluecarbon_audit.tiles import ENTRIES, TileError, parse_path
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, register_converter
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.text import compress_string
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from .. import selectors
from .. import tiles as log_tiles
from ..exceptions import NotFound, Unprocessable
from ..signing import trusted_verifiers
from .errors import ApiCode
from .log import IMMUTABLE, TextApi, _errors, _path_int, _path_integer

# tlog-tiles §Checkpoints: "headers SHOULD prevent caching beyond a few seconds"; partial tiles
# are short-lived too (a log MAY delete them once the full tile exists).
SHORT = "public, max-age=5"
OCTETS = "application/octet-stream"


def _not_found(message: str) -> JsonResponse:
    error = NotFound(message)
    return JsonResponse(error.as_dict(), status=error.status_code)


def _octets(data: bytes, full: bool) -> HttpResponse:
    response = HttpResponse(data, content_type=OCTETS)
    response["Cache-Control"] = IMMUTABLE if full else SHORT
    return response


@method_decorator(csrf_exempt, name="dispatch")
class TlogView(View):
    """A read of the log: GET (and HEAD) only. Another method is a JSON 405 naming the allowed
    ones, as on every API path (CSRF does not apply: nothing here acts on a session)."""

    def http_method_not_allowed(
        self, request: HttpRequest, *args: object, **kwargs: object
    ) -> HttpResponse:
        response = JsonResponse(
            {
                "code": str(ApiCode.METHOD_NOT_ALLOWED),
                "message": f'Method "{request.method}" not allowed.',
                "detail": {},
            },
            status=405,
        )
        response["Allow"] = ", ".join(m.upper() for m in self.http_method_names if hasattr(self, m))
        return response


class TlogCheckpointApi(TlogView):
    def get(self, request: HttpRequest) -> HttpResponse:
        checkpoint = log_tiles.checkpoint_latest()
        if checkpoint is None:
            return _not_found("no checkpoint has been issued yet")
        response = HttpResponse(
            log_tiles.checkpoint_note(checkpoint), content_type="text/plain; charset=utf-8"
        )
        response["Cache-Control"] = SHORT
        return response


class TlogTileApi(TlogView):
    """A hash tile (``tile/<L>/<N>``) or an entry bundle (``tile/entries/<N>``,
    ``tile/entries-u32/<N>``), partial ones with ``.p/<W>``."""

    def get(self, request: HttpRequest, kind: str, rest: str) -> HttpResponse:
        try:
            ref = parse_path(f"tile/{kind}/{rest}")
        except TileError:
            return _not_found(f"tile/{kind}/{rest} is not a tile path (C2SP tlog-tiles)")
        if isinstance(ref.level, int):
            data = log_tiles.hash_tile(ref.level, ref.index, ref.width)
            if data is None:
                return _not_found(f"{ref.path} is not in the tree yet")
            return _octets(data, ref.full)
        found = log_tiles.bundle_bytes(ref.index, ref.width)
        if found is None:
            return _not_found(f"{ref.path} is not in the tree yet")
        served, data = found
        if served.level != ref.level:
            # docs/ledger-format.md §8: each bundle is served in one form only.
            return _not_found(
                f"{ref.path} is served as {served.path}"
                + (" (it holds an entry over 65,535 bytes)" if served.level != ENTRIES else "")
            )
        return _gzipped(request, _octets(data, ref.full))


def _gzipped(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """tlog-tiles §Log entries: bundles SHOULD be compressed at the HTTP layer (hash tiles do
    not compress, so they are not tried)."""
    patch_vary_headers(response, ("Accept-Encoding",))
    if "gzip" not in request.headers.get("Accept-Encoding", ""):
        return response
    response.content = compress_string(response.content)
    response["Content-Encoding"] = "gzip"
    response["Content-Length"] = str(len(response.content))
    return response


class TlogVerifierKeysApi(TlogView):
    def get(self, request: HttpRequest) -> HttpResponse:
        text = "".join(v.to_string() + "\n" for v in trusted_verifiers())
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


class TlogWitnessPolicyApi(TlogView):
    def get(self, request: HttpRequest) -> HttpResponse:
        # Empty when the log has no witness policy (nothing to pin; a 404 would read as a
        # missing page).
        text = log_tiles.witness_policy_text() or ""
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


# ---- proof files ------------------------------------------------------------------------------


def entry_proof(seq: int) -> TlogProof:
    """Entry ``seq`` as a C2SP tlog-proof in the latest checkpoint (which covers it)."""
    rows = log_tiles.entries(seq, seq + 1)
    if not rows:
        raise NotFound(f"no ledger entry {seq} (yet)")
    checkpoint = log_tiles.checkpoint_latest()
    if checkpoint is None or checkpoint.size <= seq:
        raise Unprocessable(
            f"no signed checkpoint covers entry {seq} yet (checkpoints follow writes within "
            "seconds): ask again shortly",
            detail={"seq": "not_in_checkpoint"},
        )
    return TlogProof(
        index=seq,
        proof=tuple(selectors.inclusion_proof(seq, checkpoint.size)),
        checkpoint=log_tiles.checkpoint_note(checkpoint),
        extra=rows[0],
    )


class LedgerEntryProofApi(TextApi):
    @extend_schema(
        operation_id="ledger_entries_proof",
        summary="One entry as an offline proof file",
        description="A C2SP tlog-proof (c2sp.org/tlog-proof@v1): the entry's exact bytes "
        "(base64, the extra line), its RFC 9162 inclusion proof in the latest checkpoint, and "
        "that checkpoint with the log's signature and the witnesses' cosignatures. Verify it "
        "with `bluecarbon-audit proof FILE --key <pinned key>`.",
        tags=["ledger"],
        parameters=[_path_integer("seq")],
        responses={(200, "text/plain"): OpenApiTypes.STR, **_errors(404, 422)},
    )
    def get(self, request: Request, seq: str) -> HttpResponse:
        number = _path_int(seq, "ledger entry")
        proof = entry_proof(number)
        response = HttpResponse(proof.to_text(), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="bluecarbon-ledger-{number}.tlog-proof"'
        )
        # Against the latest checkpoint: a later request may get a larger tree.
        response["Cache-Control"] = SHORT
        return response


class _TileKind:
    """``<L>`` (0..63, refused later if it has a leading zero), ``entries`` or ``entries-u32``."""

    regex = r"[0-9]{1,2}|entries|entries-u32"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class _TileIndex:
    """``<N>[.p/<W>]``: groups of three digits, ``x``-prefixed but the last (checked exactly by
    ``parse_path``)."""

    regex = r"(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/[0-9]{1,3})?"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(_TileKind, "tilekind")
register_converter(_TileIndex, "tileindex")

# Mounted at v1/ledger/tlog/ (checkpoint, tiles) and v1/ (the proof file).
tlog_urlpatterns = [
    path("checkpoint", TlogCheckpointApi.as_view(), name="tlog-checkpoint"),
    path("verifier-keys", TlogVerifierKeysApi.as_view(), name="tlog-verifier-keys"),
    path("witness-policy", TlogWitnessPolicyApi.as_view(), name="tlog-witness-policy"),
    path("tile/<tilekind:kind>/<tileindex:rest>", TlogTileApi.as_view(), name="tlog-tile"),
]
urlpatterns = [
    path(
        "ledger/entries/<str:seq>/proof", LedgerEntryProofApi.as_view(), name="ledger-entry-proof"
    ),
]
