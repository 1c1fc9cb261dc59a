"""Forms of the admin pages; Flask-WTF adds the CSRF token to each."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from app.auth.models import Role


class CreateUserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    role = SelectField("Role", choices=list(Role.ALL), default=Role.VIEWER)
    # Never echoed back into the page: a form re-shown with errors asks for it again.
    password = PasswordField("Initial password (leave empty to generate one)")
    must_change_password = BooleanField("Must choose a new password at first login", default=True)
    submit = SubmitField("Create user")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=list(Role.ALL))
    submit = SubmitField("Change role")


class SignInPolicyForm(FlaskForm):
    local_passwords = BooleanField("Local passwords (off: only break-glass admins may use one)")
    second_factor_roles = SelectMultipleField(
        "Roles that must use a second factor",
        choices=list(Role.ALL),
        option_widget=CheckboxInput(),
        widget=ListWidget(prefix_label=False),
    )
    submit = SubmitField("Save policy")
