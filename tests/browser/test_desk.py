"""What the help desk found using the pages in Chromium: the favicon, the create form's
non-standard badge, error pages in the portal's layout, failed actions that come back to the
request page in human words, success messages that say what happened, the SLA policy admin in
numbers and units, and the pages at a phone's width. Screenshots go to test-artifacts/."""

import re

import pytest

from requests_app import workflow
from requests_app.forms import FORMS
from tests.browser.conftest import ARTIFACTS, READS_THE_CLOCK, sign_in
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), *READS_THE_CLOCK]


@pytest.fixture
def people():
    return {
        "ce": make_user("ce", "CE"),
        "lead": make_user("lead", "CE Leadership"),
        "devops": make_user("devops", "DevOps"),
        "devops2": make_user("devops2", "DevOps"),
        "manager": make_user("manager", "Managers"),
    }


def file(user, slug="hooli", kind="create", **data):
    form = FORMS[kind](
        data={
            "instance": slug,
            "customer": slug.title(),
            "access": "public_sso",
            "justification": "Trial",
            **data,
        }
    )
    assert form.is_valid(), form.errors
    return workflow.file_request(user, kind, form.cleaned_data, notify=False)


# -- 7. the favicon -------------------------------------------------------------------------------


def test_every_page_has_an_icon_that_loads(page, people):
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    icon = page.locator("link[rel=icon]")
    assert icon.count() == 1
    linked = page.request.get(icon.get_attribute("href"))
    assert linked.status == 200 and "svg" in linked.headers["content-type"]
    # Where no page names it (JSON, a browser's own guess) the classic address works too.
    classic = page.request.get("/favicon.ico")
    assert classic.status == 200 and classic.body() == linked.body()
    # Before anyone signs in as well.
    page.context.clear_cookies()
    assert page.request.get("/favicon.ico").status == 200


# -- 1. the create form's non-standard badge ------------------------------------------------------


def test_the_non_standard_badge_shows_only_when_the_rule_fires(page, people, screenshot):
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    page.goto("/requests/new/create/")
    badge = page.locator("#scale-warning")
    assert not badge.is_visible(), "an empty form is standard"
    page.fill("#id_users", "200")
    assert not badge.is_visible(), "200 users are standard"
    page.fill("#id_users", "3000")
    assert not badge.is_visible(), "3,000 users is the limit, not above it"
    page.fill("#id_users", "3001")
    assert badge.is_visible()
    assert "scale" in badge.inner_text() and "Tech Review" in badge.inner_text()
    screenshot("1-too-many-users")
    page.fill("#id_users", "200")
    assert not badge.is_visible(), "back under the limit, standard again"
    page.fill("#id_repositories", "25001")
    assert badge.is_visible()
    page.fill("#id_repositories", "25000")
    assert not badge.is_visible()
    # A reason ticked by hand makes the request non-standard whatever its size.
    page.check("input[name=non_standard_reasons][value=security]")
    assert badge.is_visible() and "security" in badge.inner_text()
    screenshot("2-security-ticked")
    page.uncheck("input[name=non_standard_reasons][value=security]")
    assert not badge.is_visible()
    screenshot("3-standard-again")


# -- 2. error pages in the portal's layout --------------------------------------------------------


def in_the_layout(page):
    """The page has the portal's header and navigation, and a way back home."""
    assert page.locator("header.topbar .brand").is_visible()
    assert page.locator("[data-testid=error-home]").get_attribute("href") == "/"
    html = page.content()
    # None of Django's own pages (debug or plain).
    for django_page in (
        "Traceback",
        "Using the URLconf",
        "CSRF verification failed",
        "<h1>Not Found</h1>",
        "<h1>403 Forbidden</h1>",
        "Server Error (500)",
    ):
        assert django_page not in html


def test_403_and_404_pages_say_what_and_offer_a_way_back(page, people, screenshot):
    filed = file(people["ce"])
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")

    response = page.goto("/approvals/")
    assert response.status == 403
    in_the_layout(page)
    assert page.locator("nav[aria-label=Main] >> text=My requests").is_visible()
    message = page.locator("[data-testid=error-message]").inner_text()
    assert message == "The approvals inbox is for CE Leadership, Tech Review and Managers."
    screenshot("1-403")

    # An action the role may not take (a page from before a role changed, or a crafted form):
    # the 403 names the role it needs.
    page.goto(f"/requests/{filed.pk}/")
    cancel = page.locator("button[data-action=cancel]")
    cancel.evaluate(
        "(button, url) => { button.setAttribute('formaction', url);"
        " button.removeAttribute('data-confirm'); }",
        f"/requests/{filed.pk}/actions/approve/",
    )
    with page.expect_response(re.compile(r"/actions/approve/$")) as posted:
        cancel.click()
    assert posted.value.status == 403
    page.wait_for_selector("[data-testid=error-page]")
    in_the_layout(page)
    assert page.locator("[data-testid=error-message]").inner_text() == (
        "Only CE Leadership may approve requests."
    )
    # Back to the request page it came from.
    back = page.locator("[data-testid=error-back]").get_attribute("href")
    assert back.endswith(f"/requests/{filed.pk}/")
    screenshot("2-403-action")

    response = page.goto("/requests/999999/")
    assert response.status == 404
    in_the_layout(page)
    said = page.locator("[data-testid=error-message]").inner_text()
    assert said == "There is no request #999999."
    response = page.goto("/no/such/page/")
    assert response.status == 404
    in_the_layout(page)
    assert "There is no page at /no/such/page/." in page.inner_text("[data-testid=error-message]")
    screenshot("3-404")
    page.click("[data-testid=error-home]")
    page.wait_for_selector("h1:has-text('Welcome')")


def test_an_expired_form_gets_a_page_that_says_what_to_do(page, people, screenshot):
    filed = file(people["ce"])
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    page.goto(f"/requests/{filed.pk}/")
    # As if the page was opened before signing in again: its token no longer matches.
    page.locator(".comment-form input[name=csrfmiddlewaretoken]").evaluate(
        "input => { input.value = 'x'.repeat(64); }"
    )
    page.fill("#id_body", "Any news?")
    with page.expect_response(re.compile(r"/comments/$")) as posted:
        page.click(".comment-form button[type=submit]")
    assert posted.value.status == 403
    page.wait_for_selector("[data-testid=error-page]")
    in_the_layout(page)
    assert page.locator("h1").inner_text() == "The form has expired"
    back = page.locator("[data-testid=error-back]").get_attribute("href")
    assert back.endswith(f"/requests/{filed.pk}/")
    screenshot("csrf")
    assert not filed.events.filter(action="comment").exists()


def test_a_server_error_page_renders_when_the_navigation_itself_fails(
    page, people, screenshot, monkeypatch
):
    sign_in(page, "ce", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")

    def broken(user):
        raise RuntimeError("the database is gone")

    # The navigation reads the roles from the database on every page: with it broken, every
    # page fails, and so would an error page that needed it.
    monkeypatch.setattr("portal.navigation.entries_for", broken)
    response = page.goto("/requests/")
    assert response.status == 500
    in_the_layout(page)
    assert "the database is gone" not in page.content()
    assert "Something went wrong" in page.locator("h1").inner_text()
    screenshot("500")


# -- 3. failed actions: post, redirect, get, and say why in words ---------------------------------


def snap(some_page, request, name):
    """A screenshot of a page other than the `page` fixture's (a second person's browser)."""
    ARTIFACTS.mkdir(exist_ok=True)
    some_page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{name}.png"), full_page=True)


def second_person(browser, live_server, username):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    other = context.new_page()
    other.set_default_timeout(15000)
    sign_in(other, username, PASSWORD)
    other.wait_for_selector("h1:has-text('Welcome')")
    return other


def test_two_devops_press_pick_up_and_the_slower_hears_who_won(
    page, people, browser, live_server, request
):
    filed = file(people["ce"])
    workflow.perform(people["lead"], filed.pk, "approve", notify=False)
    sign_in(page, "devops", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    page.goto(f"/requests/{filed.pk}/")
    other = second_person(browser, live_server, "devops2")
    other.goto(f"/requests/{filed.pk}/")

    page.click("button[data-action=pick_up]")
    page.wait_for_selector(".message-success")
    other.click("button[data-action=pick_up]")
    other.wait_for_selector(".messages .message-error")

    # Back on the request page (a reload does not post again), told who and when, in words.
    assert other.url.endswith(f"/requests/{filed.pk}/")
    said = other.locator(".messages .message-error").inner_text()
    assert re.fullmatch(r"devops picked this up (just now|\d+ seconds? ago)\.", said), said
    shown = other.inner_text(".messages")
    assert "pick_up" not in shown and "in_progress" not in shown
    snap(other, request, "devops2-lost")
    posts = []
    other.on("request", lambda sent: posts.append(sent.url) if sent.method == "POST" else None)
    other.reload()
    other.wait_for_selector("[data-testid=request-state]")
    assert posts == []
    filed.refresh_from_db()
    assert filed.assignee == people["devops"]
    other.context.close()


def planned_teardown(people, slug="tyrell"):
    from django.utils import timezone

    from provisioning import runs
    from tests.factories import make_instance

    make_instance(slug)
    filed = file(people["ce"], slug, kind="teardown", confirm=slug)
    workflow.perform(people["lead"], filed.pk, "approve", notify=False)
    workflow.perform(people["devops"], filed.pk, "pick_up", notify=False)
    workflow.perform(people["devops"], filed.pk, "plan", notify=False)
    run = runs.latest_run(filed.pk)
    assert run.claim("plan", "test-worker", timezone.now())
    destroyed = ["module.instance.terraform_data.project"]
    summary = {"add": 0, "change": 0, "destroy": 1, "destroyed": destroyed}
    assert run.mark_planned(b"plan", "plan text", summary, "digest")
    return filed, run


def test_a_mistyped_teardown_slug_comes_back_with_the_field_message(page, people, screenshot):
    filed, run = planned_teardown(people)
    sign_in(page, "devops2", PASSWORD)  # the second person: devops planned it
    page.wait_for_selector("h1:has-text('Welcome')")
    page.goto(f"/requests/{filed.pk}/")
    page.fill("#id_action_comment", "Customer confirmed on the call.")
    page.fill("#id_confirm", "tyrel")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[data-action=confirm]")
    page.wait_for_selector(".messages .message-error")
    assert page.url.endswith(f"/requests/{filed.pk}/")
    said = page.locator(".messages .message-error").inner_text()
    assert said == "Type 'tyrell' to confirm the teardown."
    # What was typed in the comment is still there to send again.
    assert page.input_value("#id_action_comment") == "Customer confirmed on the call."
    screenshot("teardown-mistyped")
    run.refresh_from_db()
    assert run.state == "planned"


# -- 4. success messages say what happened --------------------------------------------------------


def test_success_messages_say_what_happened(page, people, browser, live_server, request):
    standard = file(people["ce"], "hooli")
    large = file(people["ce"], "umbrella", users="4200")
    sign_in(page, "lead", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    said = {}
    for filed in (standard, large):
        page.goto(f"/requests/{filed.pk}/")
        page.click("button[data-action=approve]")
        said[filed.instance_slug] = page.locator(".message-success").inner_text()
    assert said == {
        "hooli": "Approved: queued for DevOps.",
        "umbrella": "Approved: sent to Tech Review.",
    }

    devops = second_person(browser, live_server, "devops")
    devops.goto(f"/requests/{standard.pk}/")
    devops.click("button[data-action=pick_up]")
    assert devops.locator(".message-success").inner_text() == "Picked up: assigned to you."
    devops.click("button[data-action=plan]")
    message = devops.locator(".message-success").inner_text()
    assert message == "Plan queued: a worker will plan the run."
    snap(devops, request, "devops-plan-queued")
    devops.context.close()


# -- 5. SLA policies in the admin: a number and a unit --------------------------------------------


@pytest.fixture
def policies():
    """The policy rows the data migration makes (transactional tests flush them)."""
    from requests_app.models import SlaPolicy
    from requests_app.sla.policies import DEFAULT_POLICIES, invalidate_cache

    for kind, (response, resolution) in DEFAULT_POLICIES.items():
        SlaPolicy.objects.get_or_create(
            kind=kind,
            defaults={
                "response_target": response[0],
                "response_mode": response[1],
                "resolution_target": resolution[0],
                "resolution_mode": resolution[1],
            },
        )
    invalidate_cache()
    yield
    invalidate_cache()


def test_an_admin_edits_sla_targets_as_numbers_and_units(page, policies, screenshot):
    from datetime import timedelta

    from requests_app.models import SlaPolicy

    make_user("admin", superuser=True)
    sign_in(page, "admin", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    page.goto("/admin/requests_app/slapolicy/")
    listing = page.locator("#result_list").inner_text()
    assert "24 hours" in listing and "15 working days" in listing
    assert "7 calendar days" in listing and "until the target date" in listing
    screenshot("1-list")

    policy = SlaPolicy.objects.get(kind="create")
    page.goto(f"/admin/requests_app/slapolicy/{policy.pk}/change/")
    assert page.input_value("#id_response_target_number") == "24"
    assert page.input_value("#id_response_target_unit") == "hours"
    assert page.input_value("#id_resolution_target_number") == "15"
    assert page.input_value("#id_resolution_target_unit") == "working_days"
    # Only a resolution can run until a target date.
    assert page.locator("#id_response_target_unit option[value=target_date]").count() == 0
    screenshot("2-form")

    page.fill("#id_resolution_target_number", "-2")
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")
    assert "positive" in page.locator(".field-resolution_target_number .errorlist").inner_text()
    screenshot("3-refused")

    page.fill("#id_response_target_number", "2")
    page.select_option("#id_response_target_unit", "calendar_days")
    page.fill("#id_resolution_target_number", "10")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist")
    assert "10 working days" in page.locator("#result_list").inner_text()
    policy.refresh_from_db()
    assert (policy.response_target, policy.response_mode) == (timedelta(days=2), "calendar")
    assert (policy.resolution_target, policy.resolution_mode) == (timedelta(days=10), "working")


# -- 6. a phone's width ---------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}


def horizontal_overflow(page):
    """How far the page scrolls sideways (0: it fits), and what sticks out if it does."""
    return page.evaluate(
        """() => {
          const root = document.documentElement;
          const wide = [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1)
            .slice(0, 5)
            .map((el) => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''));
          return [root.scrollWidth - root.clientWidth, wide];
        }"""
    )


@pytest.fixture
def busy_desk(people, policies):
    """Requests in every column of the board, instances with long names, for the wide tables."""
    from tests.factories import make_instance

    for slug in ("acme-corporation-eu", "globex-international", "initech-staging"):
        make_instance(slug, customer=f"{slug.replace('-', ' ').title()} Holdings Ltd")
    shown = file(people["ce"], "umbrella-corporation", users="4200")
    for step, slug in enumerate(("hooli-production", "pied-piper-trial", "massive-dynamic")):
        filed = file(people["ce"], slug)
        workflow.perform(people["lead"], filed.pk, "approve", notify=False)
        if step:
            workflow.perform(people["devops"], filed.pk, "pick_up", notify=False)
        if step == 2:
            workflow.perform(people["devops"], filed.pk, "wait_on_customer", notify=False)
    return shown


def test_the_pages_fit_a_phone(page, people, busy_desk, screenshot):
    page.set_viewport_size(PHONE)
    sign_in(page, "devops", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    pages = {
        "home": "/",
        "request-list": "/requests/",
        "request-detail": f"/requests/{busy_desk.pk}/",
        # A plan waiting to be confirmed: the long resource addresses it destroys, its log.
        "teardown-detail": f"/requests/{planned_teardown(people)[0].pk}/",
        "queue": "/queue/",
        "instances": "/instances/",
        "board": "/dashboards/board/",
        "fleet": "/dashboards/fleet/",
        "sla-dashboard": "/dashboards/sla/",
    }
    overflowing = {}
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("load")
        width, wide = horizontal_overflow(page)
        if width > 0:
            overflowing[name] = (width, wide)
        screenshot(name)
    assert overflowing == {}, overflowing

    # Tables scroll inside their own box instead of pushing the page sideways.
    page.goto("/requests/")
    table = page.locator("[data-testid=request-table]")
    scroller = table.locator("xpath=..")
    assert scroller.evaluate("el => getComputedStyle(el).overflowX") == "auto"
    assert scroller.evaluate("el => el.scrollWidth > el.clientWidth")


def test_the_navigation_folds_into_a_menu_on_a_phone(page, people, screenshot):
    page.set_viewport_size(PHONE)
    sign_in(page, "devops", PASSWORD)
    page.wait_for_selector("h1:has-text('Welcome')")
    menu = page.locator("[data-testid=menu-button]")
    nav = page.locator("nav[aria-label=Main]")
    assert menu.is_visible() and not nav.is_visible()
    assert menu.get_attribute("aria-expanded") == "false"
    screenshot("1-folded")
    menu.click()
    assert nav.is_visible() and menu.get_attribute("aria-expanded") == "true"
    assert horizontal_overflow(page)[0] == 0
    screenshot("2-open")
    nav.locator('text="Board"').click()
    page.wait_for_selector("[data-testid=board]")
    assert not nav.is_visible()  # folded again on the next page

    # On a wide screen there is no menu button: the navigation is all there.
    page.set_viewport_size({"width": 1280, "height": 900})
    assert not menu.is_visible() and nav.is_visible()
