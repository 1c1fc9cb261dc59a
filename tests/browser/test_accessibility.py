"""axe-core on every page (the layout test's list), light and dark, on a desk and a
phone: any "serious" or "critical" violation fails, and is printed with its elements.

axe-core comes from npm (package.json's devDependencies, `make assets` runs npm ci)
and is read from node_modules: a test tool, never copied to app/static/vendor.

The CSP forbids inline scripts, so axe cannot be added as a <script>. It is run with
page.evaluate, which goes through the DevTools protocol and not through the page's
CSP; the page itself stays under its real policy (no bypass_csp context), so axe sees
what a user sees.
"""

import os

import pytest

from tests.browser.conftest import PROJECT_ROOT
from tests.browser.test_layout import SCHEMES, SIZES, open_screen, screen_params

pytestmark = pytest.mark.browser

AXE_SCRIPT = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
FAILING_IMPACTS = ("serious", "critical")
# The rules the audit held the pages to: WCAG 2.x A and AA, and axe's best practices.
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe.min.js from node_modules, or skip (fail when REQUIRE_BROWSER=1)."""
    if not AXE_SCRIPT.exists():
        message = f"{AXE_SCRIPT.relative_to(PROJECT_ROOT)} is missing: run `make assets`"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    return AXE_SCRIPT.read_text(encoding="utf-8")


def axe_violations(page, axe_source: str) -> list[dict]:
    """Run axe-core on the page as it stands; its violations."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source)
    return page.evaluate("options => axe.run(document, options)", AXE_OPTIONS)["violations"]


def describe(violation: dict) -> str:
    nodes = violation["nodes"]
    lines = [
        f"{violation['impact']}: {violation['id']} — {violation['help']} ({len(nodes)} element(s))"
    ]
    for node in nodes[:4]:
        summary = " ".join((node.get("failureSummary") or "").split())
        lines.append(f"    {' '.join(map(str, node['target']))}: {summary[:300]}")
    return "\n".join(lines)


@pytest.mark.parametrize("screen", screen_params())
def test_page_has_no_serious_or_critical_accessibility_violation(
    open_page, desk, axe_source, screen
):
    failing, minor = [], []
    for size in SIZES:
        for scheme in SCHEMES:
            page = open_screen(open_page, desk, screen, size, scheme)
            for violation in axe_violations(page, axe_source):
                text = f"{size} {scheme}: {describe(violation)}"
                (failing if violation["impact"] in FAILING_IMPACTS else minor).append(text)
            page.context.close()
    if minor:
        print(f"{screen.name}: minor and moderate findings:\n" + "\n".join(minor))
    assert not failing, f"{screen.name} ({screen.path(desk)}):\n" + "\n".join(failing)
