"""Forms of the auth room; Flask-WTF adds the CSRF token to each."""

from flask import abort
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp
from wtforms.widgets import CheckboxInput, ListWidget, TextInput

from app.alerts.validation import EMAIL
from app.auth.models import EMAIL_MAX_LENGTH


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    # No max length here: over-long passwords fail like wrong ones, same answer.
    password = PasswordField("Password", validators=[DataRequired()])
    submit = SubmitField("Log in")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField("New password", validators=[DataRequired()])
    confirm_password = PasswordField(
        "Repeat new password",
        validators=[DataRequired(), EqualTo("new_password", "Passwords do not match.")],
    )
    submit = SubmitField("Change password")


class TimezoneForm(FlaskForm):
    timezone = SelectField("Show times in", validate_choice=True)
    submit = SubmitField("Save")


class DigestForm(FlaskForm):
    """The daily digest e-mail: on or off, where to, and at what time of my day."""

    enabled = BooleanField("Send me the daily digest")
    email = StringField(
        "E-mail address",
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            Optional(),
            Length(max=EMAIL_MAX_LENGTH),
            Regexp(EMAIL, message="That is not an e-mail address."),
        ],
    )
    # A 24-hour hh:mm text box, not the browser's time picker (which shows 08:00 AM in
    # an English locale): times are typed and shown as on every other page.
    send_at = TimeField(
        "At (my local time, 24-hour hh:mm)",
        validators=[DataRequired("Choose a time, as hh:mm.")],
        widget=TextInput(),
        render_kw={
            "placeholder": "hh:mm",
            "pattern": "[0-2][0-9]:[0-5][0-9]",
            "inputmode": "numeric",
            "autocomplete": "off",
        },
    )
    submit = SubmitField("Save")

    def validate(self, extra_validators=None) -> bool:
        # Not an inline validator: Optional() stops those for an empty address.
        valid = super().validate(extra_validators)
        if valid and self.enabled.data and not self.email.data:
            self.email.errors.append("The digest needs an address to go to.")
            return False
        return valid


def digest_form_for(user) -> DigestForm:
    """The digest form showing the user's current settings."""
    return DigestForm(
        prefix="dg",
        formdata=None,
        data={"enabled": user.digest_enabled, "email": user.email, "send_at": user.digest_at},
    )


class ConfirmForm(FlaskForm):
    """A POST button with nothing but its CSRF token."""

    submit = SubmitField("Confirm")


def require_confirmation() -> None:
    """Stop a button's POST with 400 unless its ConfirmForm validates."""
    if not ConfirmForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")


SCOPE_LABELS = {"ingest": "ingest — push snapshots", "read": "read — read positions"}


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    # Choices are the scopes the user's role may hold (see `offer_scopes`). Anything else
    # sent is left to tokens.create_token, the one place that refuses and gets audited.
    scopes = SelectMultipleField(
        "Scopes",
        choices=[],
        validate_choice=False,
        validators=[DataRequired("Pick at least one scope.")],
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    accounts = StringField(
        "Only these accounts (comma-separated, empty for all)", validators=[Length(max=1000)]
    )
    expires = DateField("Expires (optional)", validators=[Optional()])
    submit = SubmitField("Create token")

    def offer_scopes(self, scopes: tuple[str, ...]) -> "TokenForm":
        """Show a checkbox only for these scopes."""
        self.scopes.choices = [SelectChoice(s, SCOPE_LABELS[s]) for s in scopes]
        return self


class PasswordConfirmForm(FlaskForm):
    """A second-factor change confirmed with the current password."""

    current_password = PasswordField("Current password", validators=[DataRequired()])
    submit = SubmitField("Confirm")


class CodeForm(FlaskForm):
    """A 6-digit authenticator code, or a recovery code."""

    code = StringField("Code", validators=[DataRequired(), Length(max=32)])
    submit = SubmitField("Verify")
