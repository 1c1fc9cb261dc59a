"""Forms of the reconciliation room: defining a reconciliation and its assets."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app.alerts.models import Severity
from app.recon.models import DEFAULT_MAX_AGE_SECONDS
from app.user_input import parse_decimal, parse_integer

# Blank asset lines offered below the defined ones; a longer list is saved and edited again.
SPARE_ASSET_LINES = 3
# Five fields a line: 150 lines stay under the form parts a request may carry (1,000).
# A reconciliation with more assets is edited here without its asset list (kept as it
# is) and its assets with `flask recon update --asset ...`.
MAX_ASSET_LINES = 150


def exact_decimal(form, field):
    """A decimal as user_input reads every number people type: ASCII digits, finite."""
    text = (field.data or "").strip()
    if not text:
        return
    try:
        parse_decimal(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def whole_seconds(form, field):
    """Refuse other scripts' digits, which int() would convert."""
    text = (field.raw_data or [""])[0].strip()
    if not text or field.process_errors:
        return
    try:
        parse_integer(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class AssetLineForm(Form):
    """One reconciled asset: its name on each side, the multiplier, its own tolerance."""

    asset = StringField("Asset (left)", validators=[Optional(), Length(max=64)])
    right_asset = StringField("Right asset (empty: the same)", validators=[Length(max=64)])
    multiplier = StringField("Multiplier (empty: 1)", validators=[Length(max=100), exact_decimal])
    tolerance_abs = StringField(
        "Absolute tolerance (empty: the default)", validators=[Length(max=100), exact_decimal]
    )
    tolerance_rel = StringField(
        "Relative tolerance, % (empty: the default)", validators=[Length(max=100), exact_decimal]
    )

    def is_blank(self) -> bool:
        return not any((f.data or "").strip() for f in self)


class ReconciliationForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    left_account = StringField(
        "Left account (the trading system's book)", validators=[DataRequired(), Length(max=64)]
    )
    left_label = StringField("Left side's label", default="book", validators=[Length(max=32)])
    right_account = StringField(
        "Right account (the venue's report)", validators=[DataRequired(), Length(max=64)]
    )
    right_label = StringField("Right side's label", default="venue", validators=[Length(max=32)])
    tolerance_abs = StringField(
        "Absolute tolerance for every asset (asset units)",
        validators=[Length(max=100), exact_decimal],
    )
    tolerance_rel = StringField(
        "Relative tolerance for every asset, %", validators=[Length(max=100), exact_decimal]
    )
    grace_seconds = IntegerField(
        "Grace period, seconds",
        default=0,
        validators=[InputRequired(), whole_seconds, NumberRange(min=0, max=7 * 86400)],
    )
    left_max_age_seconds = IntegerField(
        "Maximum age of the left side, seconds",
        default=DEFAULT_MAX_AGE_SECONDS,
        validators=[InputRequired(), whole_seconds, NumberRange(min=1, max=30 * 86400)],
    )
    right_max_age_seconds = IntegerField(
        "Maximum age of the right side, seconds",
        default=DEFAULT_MAX_AGE_SECONDS,
        validators=[InputRequired(), whole_seconds, NumberRange(min=1, max=30 * 86400)],
    )
    severity = SelectField(
        "Severity of a break",
        choices=[SelectChoice(s, s) for s in Severity.ALL],
        default=Severity.CRITICAL,
    )
    enabled = BooleanField("Enabled", default=True)
    channels = SelectMultipleField(
        "Notify", coerce=int, option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False)
    )
    assets = FieldList(FormField(AssetLineForm), max_entries=MAX_ASSET_LINES)
    submit = SubmitField("Save reconciliation")

    def asset_lines(self) -> list[AssetLineForm]:
        """The asset lines filled in (blank spare lines are not assets)."""
        return [entry.form for entry in self.assets if not entry.form.is_blank()]
