"""What printed pages share: the site's absolute URL of a path (for a QR code or a printed
link) and QR codes as SVG (segno, pure Python: ISO/IEC 18004)."""

from __future__ import annotations

import io

import segno
from django.conf import settings
from django.http import HttpRequest
from django.utils.safestring import SafeString, mark_safe


def absolute_url(request: HttpRequest, path: str) -> str:
    """``PORTAL_BASE_URL`` + ``path`` when the deployment sets it (its public address, behind a
    proxy), else the request's own scheme and host (Django checks the host against
    ``ALLOWED_HOSTS``)."""
    base = settings.PORTAL_BASE_URL.rstrip("/")
    return f"{base}{path}" if base else request.build_absolute_uri(path)


def qr_code(text: str) -> segno.QRCode:
    """Error correction M (15 % of the symbol may be lost), the size the text needs."""
    return segno.make_qr(text, error="m")


def qr_svg(text: str, *, title: str) -> SafeString:
    """The QR code of ``text`` as an inline SVG element, scaled by the stylesheet (a viewBox,
    no size of its own, no style attribute: the CSP allows no inline style)."""
    out = io.BytesIO()
    qr_code(text).save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        svgclass="qr",
        lineclass="qr-modules",
        omitsize=True,
        border=4,
        title=title,
    )
    return mark_safe(out.getvalue().decode())  # noqa: S308 (segno escapes the title; the rest is its markup)
