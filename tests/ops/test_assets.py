"""Static URLs carry a hash of the file's content, so a changed file gets a new URL."""

import re

from flask import url_for

from app.ops import assets


def test_static_urls_carry_the_content_hash(app):
    with app.test_request_context():
        url = url_for("static", filename="css/app.css")
    assert re.fullmatch(r"/static/css/app\.css\?v=[0-9a-f]{12}", url)


def test_a_changed_file_gets_a_new_version_and_a_missing_one_none(app, tmp_path, monkeypatch):
    app.static_folder = str(tmp_path)
    (tmp_path / "x.js").write_text("one")
    monkeypatch.setattr(assets, "RECHECK_SECONDS", 0.0)
    with app.app_context():
        first = assets.static_version("x.js")
        assert assets.static_version("x.js") == first
        (tmp_path / "x.js").write_text("two, a different length")
        assert assets.static_version("x.js") != first
        assert assets.static_version("missing.js") is None


def test_files_are_looked_at_only_now_and_then(app, tmp_path):
    app.static_folder = str(tmp_path)
    (tmp_path / "x.js").write_text("one")
    with app.app_context():
        first = assets.static_version("x.js")
        (tmp_path / "x.js").unlink()
        # Within the recheck window the known version is used without a look at the disk.
        assert assets.static_version("x.js") == first
