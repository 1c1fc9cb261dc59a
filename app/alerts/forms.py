"""Forms of the alerts room."""

from flask_wtf import FlaskForm
from wtforms import DecimalField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange


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
    hours = DecimalField(
        "For how many hours",
        default=1,
        places=None,
        validators=[InputRequired(), NumberRange(min=0.01, max=24 * 90)],
    )
    comment = StringField("Why", validators=[DataRequired(), Length(max=500)])
    submit = SubmitField("Create silence")


class QuickSilenceForm(FlaskForm):
    hours = DecimalField(
        "Hours",
        default=1,
        places=None,
        validators=[InputRequired(), NumberRange(min=0.01, max=24 * 90)],
    )
    submit = SubmitField("Silence")
