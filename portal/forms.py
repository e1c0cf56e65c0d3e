"""The portal's forms: input checked at the edge (decimal strings to integers, text lengths),
then handed to one service, whose errors come back on the field they are about."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from auctions.models import Format
from bluecarbon.errors import DomainError
from ledger.core.quantity import QuantityError, parse_tonnes
from ledger.models import Ecosystem
from portal.numbers import plain, tonnes_text

# What a reader is told about a quantity it typed, by QuantityError's stable code: in words,
# in tonnes, in the page's language (the code's own message is for API clients).
TONNES_ERRORS = {
    "not_a_decimal": _("Enter the quantity in tonnes as a number, for example 12.5."),
    "too_precise": _(
        "A quantity has at most three decimals (one kilogram). Nothing is rounded: "
        "enter the tonnes exactly."
    ),
    "negative": _("The quantity cannot be negative."),
    "zero": _("Enter a quantity greater than zero."),
    "too_large": _("The quantity is too large."),
}


class TonnesField(forms.Field):
    """A decimal string of tonnes with at most three decimals -> integer kgCO2e. Thousands
    separators are accepted ("2,340.1"), as the pages write tonnes."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "maxlength": 24})

    def to_python(self, value: Any) -> int | None:
        text = plain((value or "").strip())
        if not text:
            return None
        try:
            return parse_tonnes(text)
        except QuantityError as exc:
            message = TONNES_ERRORS.get(exc.code, TONNES_ERRORS["not_a_decimal"])
            raise forms.ValidationError(message, code=exc.code) from None


def retire_error(exc: DomainError) -> tuple[str | None, str]:
    """A refusal of ``credit_retire`` as the retirement form says it: the field it is about
    and a sentence in tonnes, in the page's language."""
    detail = exc.detail or {}
    if exc.code == "insufficient_balance":
        return "quantity", gettext(
            "This holding has %(held)s t tradable; you asked to retire %(asked)s t."
        ) % {
            "held": tonnes_text(int(detail.get("tradable", 0))),
            "asked": tonnes_text(int(detail.get("requested", 0))),
        }
    if exc.code == "credits_retired":
        return "holding", (
            gettext("These credits were retired or cancelled already, and never move again.")
        )
    if exc.code == "not_found":
        return "holding", str(gettext("This holding is no longer yours or no longer exists."))
    if exc.code == "project_not_active":
        return "holding", str(
            gettext("Credits of this project cannot be retired while it is not active.")
        )
    field = next(iter(detail), None)
    return (field if isinstance(field, str) else None), str(
        gettext("The registry refused the retirement (%(code)s).") % {"code": exc.code}
    )


class RetireForm(forms.Form):
    holding = forms.ChoiceField(label=_("Credits to retire (account and batch)"))
    quantity = TonnesField(label=_("Quantity (tCO2e, at most 3 decimals)"))
    beneficiary = forms.CharField(label=_("Beneficiary"), max_length=300)
    purpose = forms.CharField(label=_("Purpose"), max_length=300)
    jurisdiction = forms.CharField(
        label=_("Jurisdiction (ISO 3166-2, e.g. CN-ZJ)"),
        max_length=6,
        validators=[
            RegexValidator(r"^[A-Z]{2}-[A-Z0-9]{1,3}$", _("An ISO 3166-2 code, e.g. CN-ZJ."))
        ],
    )
    reason = forms.CharField(
        label=_("Reason (optional)"), max_length=2000, required=False, widget=forms.Textarea
    )

    def __init__(self, *args: Any, holdings: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["holding"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            (
                f"{h.account_id}:{h.batch_id}",
                gettext("%(account)s — %(batch)s (%(t)s t)")
                % {
                    "account": h.account.name,
                    "batch": h.batch.serial,
                    "t": tonnes_text(h.tradable),
                },
            )
            for h in holdings
        ]

    def holding_ids(self) -> tuple[int, int]:
        account, batch = self.cleaned_data["holding"].split(":")
        return int(account), int(batch)


class SignupForm(forms.Form):
    organization_name = forms.CharField(label=_("Organization"), max_length=200)
    handle = forms.SlugField(
        label=_("Short name (letters, digits, hyphens)"),
        max_length=64,
        help_text=_("How your organization is named on the ledger, e.g. ningbo-energy."),
    )
    username = forms.CharField(label=_("User name"), max_length=150)
    email = forms.EmailField(label=_("Email (auction results are sent here)"))
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput)

    def clean_handle(self) -> str:
        return self.cleaned_data["handle"].lower()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("password"):
            # The same validators as every other password (AUTH_PASSWORD_VALIDATORS), against
            # what this user would be, so a password like the user name is refused too.
            candidate = get_user_model()(
                username=data.get("username", ""), email=data.get("email", "")
            )
            try:
                validate_password(data["password"], candidate)
            except ValidationError as exc:
                self.add_error("password", exc)
        return data


def translated(choices: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    """A model's choices with their labels looked up in the reader's language when rendered
    (the labels are in the catalog through portal/labels.py)."""
    return [("", _("All")), *((value, _(label)) for value, label in choices)]


class AuctionFilterForm(forms.Form):
    ecosystem = forms.ChoiceField(
        label=_("Ecosystem"), required=False, choices=translated(Ecosystem.choices)
    )
    vintage = forms.IntegerField(label=_("Vintage"), required=False, min_value=1990, max_value=2200)
    format = forms.ChoiceField(
        label=_("Format"), required=False, choices=translated(Format.choices)
    )


class LedgerFilterForm(forms.Form):
    type = forms.CharField(label=_("Entry type"), required=False, max_length=32)
    account = forms.IntegerField(label=_("Account"), required=False, min_value=1)
    batch = forms.IntegerField(label=_("Batch"), required=False, min_value=1)
    since = forms.DateField(
        label=_("From (date, UTC)"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label=_("To (date, UTC, inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
