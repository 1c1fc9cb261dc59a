"""Forms of the alerts room."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DecimalField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    URLField,
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

from app.alerts.models import ChannelKind, Severity
from app.user_input import parse_decimal, parse_integer


def ascii_digits(form, field):
    """Refuse numbers in other scripts' digits, which Decimal() and int() would convert."""
    text = (field.raw_data or [""])[0].strip()
    if not text or field.process_errors:  # empty, or already refused as no number at all
        return
    try:
        (parse_integer if isinstance(field, IntegerField) else parse_decimal)(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class AcknowledgeForm(FlaskForm):
    comment = StringField("Comment", validators=[Length(max=500)])
    submit = SubmitField("Acknowledge")


class SilenceForm(FlaskForm):
    rule_id = SelectField("Rule", coerce=int, validate_choice=True)
    asset = StringField(
        "Asset (* for all)", default="*", validators=[DataRequired(), Length(max=64)]
    )
    account = StringField(
        "Account (* for all)", default="*", validators=[DataRequired(), Length(max=64)]
    )
    # Read in the viewer's zone by the route (parse_local_datetime); empty: now.
    starts = StringField("Starts (empty: now)", validators=[Optional(), Length(max=40)])
    hours = DecimalField(
        "For how many hours",
        default=1,
        places=None,
        validators=[InputRequired(), ascii_digits, NumberRange(min=0.01, max=24 * 90)],
    )
    comment = StringField("Why", validators=[DataRequired(), Length(max=500)])
    submit = SubmitField("Create silence")


class QuickSilenceForm(FlaskForm):
    hours = DecimalField(
        "Hours",
        default=1,
        places=None,
        validators=[InputRequired(), ascii_digits, NumberRange(min=0.01, max=24 * 90)],
    )
    submit = SubmitField("Silence")


class RuleForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    kind = SelectField(
        "Kind",
        choices=[
            SelectChoice("position_above", "Position above threshold"),
            SelectChoice("position_below", "Position below threshold"),
            SelectChoice("notional_above", "Absolute notional above threshold"),
            SelectChoice("change_over_window", "Change over a window"),
            SelectChoice("gross_exposure_above", "Gross exposure of an account above"),
            SelectChoice("stale_feed", "Stale feed: no snapshot for N seconds"),
        ],
    )
    asset = StringField(
        "Asset (* for every asset)", default="*", validators=[DataRequired(), Length(max=64)]
    )
    account = StringField(
        "Account (* for every account)", default="*", validators=[DataRequired(), Length(max=64)]
    )
    threshold = DecimalField(
        "Threshold (seconds for a stale feed)",
        places=None,
        validators=[InputRequired(), ascii_digits],
    )
    clear_threshold = DecimalField(
        "Clear threshold (optional, hysteresis)",
        places=None,
        validators=[Optional(), ascii_digits],
    )
    window_seconds = IntegerField(
        "Window, seconds (change over a window)",
        validators=[Optional(), ascii_digits, NumberRange(min=1)],
    )
    change_percent = BooleanField("Change in percent")
    pending_seconds = IntegerField(
        "Pending period, seconds",
        default=0,
        validators=[InputRequired(), ascii_digits, NumberRange(min=0)],
    )
    severity = SelectField(
        "Severity", choices=[SelectChoice(s, s) for s in Severity.ALL], default=Severity.WARNING
    )
    description = TextAreaField("Description", validators=[Length(max=2000)])
    runbook_url = URLField("Runbook link", validators=[Optional(), Length(max=500)])
    repeat_interval_seconds = IntegerField(
        "Repeat every, seconds (0: never)",
        default=3600,
        validators=[InputRequired(), ascii_digits, NumberRange(min=0)],
    )
    send_resolved = BooleanField("Notify when resolved", default=True)
    enabled = BooleanField("Enabled", default=True)
    channels = SelectMultipleField(
        "Notify", coerce=int, option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False)
    )
    # 0: none. Checked against the policies that exist when the rule is saved.
    escalation_policy_id = SelectField(
        "Escalation policy (pages its steps in turn until acknowledged)",
        coerce=int,
        default=0,
        validate_choice=False,
    )
    submit = SubmitField("Save rule")


class ChannelForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    kind = SelectField("Kind", choices=[SelectChoice(k, k) for k in ChannelKind.ALL])
    target = StringField("URL or e-mail address", validators=[DataRequired(), Length(max=500)])
    submit = SubmitField("Add channel")


class ChannelTargetForm(FlaskForm):
    target = StringField("New URL or e-mail address", validators=[DataRequired(), Length(max=500)])
    submit = SubmitField("Change target")


class PolicyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    description = StringField("Description", validators=[Length(max=500)])
    submit = SubmitField("Save policy")


class StepForm(FlaskForm):
    channels = SelectMultipleField(
        "Notify", coerce=int, option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False)
    )
    wait_seconds = IntegerField(
        "Then wait, seconds, for an acknowledgement before the next step",
        default=900,
        validators=[InputRequired(), ascii_digits, NumberRange(min=0, max=7 * 86400)],
    )
    submit = SubmitField("Add step")


class GroupingForm(FlaskForm):
    group_by = SelectMultipleField(
        "Group by (none: one message per alert)",
        choices=[SelectChoice(label, label) for label in ("rule", "account", "asset", "severity")],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    group_wait_seconds = IntegerField(
        "Group wait, seconds",
        default=30,
        validators=[InputRequired(), ascii_digits, NumberRange(min=0, max=86400)],
    )
    group_interval_seconds = IntegerField(
        "Group interval, seconds",
        default=300,
        validators=[InputRequired(), ascii_digits, NumberRange(min=1, max=86400)],
    )
    group_repeat_seconds = IntegerField(
        "Repeat interval, seconds",
        default=3600,
        validators=[InputRequired(), ascii_digits, NumberRange(min=1, max=7 * 86400)],
    )
    submit = SubmitField("Save grouping")
