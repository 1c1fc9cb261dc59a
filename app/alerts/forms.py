"""Forms of the alerts room."""

from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import Length


class AcknowledgeForm(FlaskForm):
    comment = StringField("Comment", validators=[Length(max=500)])
    submit = SubmitField("Acknowledge")
