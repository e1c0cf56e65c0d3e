"""Two-factor sign-in's pages: the code step after the password, and the account's two-factor
page (enrol with a QR code and a first code, see recovery codes once, make new ones, remove).
The rules are in ``two_factor``; these views parse, call it, render."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django_otp import login as otp_login

from . import two_factor
from .two_factor_models import RecoveryCodeDevice


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=40,
        help_text=gettext_lazy(
            "The 6-digit code your authenticator app shows now, or one of your recovery codes."
        ),
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false"}
        ),
    )


class EnrolForm(CodeForm):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=40,
        help_text=gettext_lazy("The 6-digit code your authenticator app shows for this account."),
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"}
        ),
    )


def _safe_next(request: HttpRequest, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _wait_error(seconds: int) -> str:
    return ngettext(
        "Too many wrong codes. Try again in %(n)d second.",
        "Too many wrong codes. Try again in %(n)d seconds.",
        seconds,
    ) % {"n": seconds}


def _code_check(form: CodeForm, user: Any) -> Any:
    """The device that accepted the form's code, or None with the reason on the form."""
    wait = two_factor.code_wait_seconds(user)
    if wait:
        form.add_error("code", _wait_error(wait))
        return None
    device = two_factor.code_verify(user=user, code=form.cleaned_data["code"])
    if device is None:
        form.add_error(
            "code",
            _("That code is not valid, or it was used already. Wait for the next one."),
        )
    return device


class SignInView(auth_views.LoginView):
    """The password step. A user with a device goes on to the code step, not signed in yet; an
    operator without one is signed in and sent to enrolment (``two_factor.Gate`` keeps them
    there)."""

    template_name = "portal/login.html"

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        if two_factor.totp_device(user) is not None:
            two_factor.pending_start(self.request, user, next_url=self.get_success_url())
            # The password was right: not a failed sign-in for the throttle (throttle.py).
            self.request.sign_in_password_accepted = True  # type: ignore[attr-defined]
            return redirect("portal:login-code")
        response = super().form_valid(form)
        if two_factor.two_factor_required_for(user):
            query = urlencode({"next": self.get_success_url()})
            return redirect(f"{reverse('portal:two-factor')}?{query}")
        return response


@never_cache
def sign_in_code(request: HttpRequest) -> HttpResponse:
    pending = two_factor.pending_of(request)
    user = None
    if pending is not None:
        user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    if pending is None or user is None:
        messages.info(request, _("Sign in again: the code step waits five minutes at most."))
        return redirect("portal:login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = _code_check(form, user)
        if device is not None:
            del request.session[two_factor.PENDING_KEY]
            login(request, user, backend=pending.get("backend") or None)
            otp_login(request, device)
            if isinstance(device, RecoveryCodeDevice):
                left = two_factor.recovery_codes_left(user)
                messages.warning(
                    request,
                    ngettext(
                        "You signed in with a recovery code; %(n)d is left. "
                        "Make new ones on your two-factor page.",
                        "You signed in with a recovery code; %(n)d are left. "
                        "Make new ones on your two-factor page.",
                        left,
                    )
                    % {"n": left},
                )
            return redirect(_safe_next(request, pending.get("next")))
    return render(request, "portal/login_code.html", {"form": form})


@never_cache
def two_factor_page(request: HttpRequest) -> HttpResponse:
    """Enrolment (no confirmed device yet) or management (make new recovery codes, remove)."""
    if not request.user.is_authenticated:
        return redirect(f"{reverse('portal:login')}?{urlencode({'next': request.path})}")
    user: Any = request.user
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next"))
    required = two_factor.two_factor_required_for(user)
    device = two_factor.totp_device(user)
    if device is None:
        pending = two_factor.totp_enrolment_start(user=user)
        form = EnrolForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            codes = two_factor.totp_enrolment_confirm(
                request=request, code=form.cleaned_data["code"]
            )
            if codes is not None:
                return _codes_page(request, codes, next_url, enrolled=True)
            form.add_error(
                "code",
                _("That code is not right. Check the app's clock and enter the code it shows now."),
            )
        return render(
            request,
            "portal/two_factor_enrol.html",
            {
                "form": form,
                "required": required,
                "secret": two_factor.totp_secret(pending),
                "qr": two_factor.totp_qr_svg(pending),
                "next": next_url,
            },
        )

    action = request.POST.get("action") if request.method == "POST" else None
    forms_by_action = {
        name: CodeForm(request.POST if action == name else None, prefix=name)
        for name in ("codes", "remove")
    }
    if action in forms_by_action:
        chosen = forms_by_action[action]
        if chosen.is_valid() and _code_check(chosen, user) is not None:
            if action == "codes":
                codes = two_factor.recovery_codes_renew(user=user)
                return _codes_page(request, codes, next_url, enrolled=False)
            two_factor.two_factor_remove(user=user)
            messages.success(request, _("Two-factor sign-in is off for this account."))
            return redirect("portal:two-factor" if required else "portal:dashboard")
    return render(
        request,
        "portal/two_factor.html",
        {
            "device": device,
            "codes_left": two_factor.recovery_codes_left(user),
            "codes_form": forms_by_action["codes"],
            "remove_form": forms_by_action["remove"],
            "required": required,
        },
    )


def _codes_page(request: HttpRequest, codes: list[str], next_url: str, *, enrolled: bool):
    return render(
        request,
        "portal/two_factor_codes.html",
        {"codes": codes, "next": next_url, "enrolled": enrolled},
    )
