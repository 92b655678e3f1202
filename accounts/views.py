"""Sign-in pages (password and SSO) and the API tokens page."""

import logging
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts import oidc, passwords, sso_accounts, tokens
from accounts.forms import TokenForm
from accounts.models import ApiToken
from audit.models import Outcome
from audit.signals import record

logger = logging.getLogger(__name__)

NEXT_KEY = "sso_next"
NO_ROLE_KEY = "sso_no_role"
# The backend that loads an SSO user on later requests (the session names it).
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _safe_next(request: HttpRequest, candidate: str) -> str:
    allowed = url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return candidate if candidate and allowed else ""


# -- password sign-in ----------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's sign-in page with the "Sign in with SSO" button and the password switches."""

    form_class = passwords.LoginForm

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not passwords.form_shown():
            logger.warning("Password sign-in refused: PASSWORD_LOGIN is off")
            messages.error(request, passwords.OFF)
            return self.render_to_response(self.get_context_data(), status=403)
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)
        next_url = context.get("next", "")
        sso_url = reverse("oidc_login")
        context.update(
            sso_enabled=oidc.enabled(),
            sso_url=f"{sso_url}?{urlencode({'next': next_url})}" if next_url else sso_url,
            password_form=passwords.form_shown(),
            superusers_only=passwords.superusers_only(),
        )
        return context


@never_cache
@login_not_required
def admin_login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """/admin/login/ under the same rule: with no password sign-in at all, GET goes to the
    portal's sign-in page (SSO) and POST is refused; else the admin's own page, whose form
    (accounts.passwords.AdminLoginForm, set in accounts/admin.py) applies the switches."""
    if not passwords.form_shown():
        if request.method == "POST":
            logger.warning("Admin password sign-in refused: PASSWORD_LOGIN is off")
            messages.error(request, passwords.OFF)
            return redirect("login")
        next_url = _safe_next(request, request.GET.get("next", "")) or reverse("admin:index")
        return HttpResponseRedirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
    return admin.site.login(request, extra_context)


# -- single sign-on ------------------------------------------------------------------------------


def _refuse(request: HttpRequest, failure: oidc.SignInFailed, username: str = "") -> HttpResponse:
    logger.warning("SSO sign-in refused: %s", failure.reason)
    # Nothing of the attempt stays: no session, no half-finished state.
    request.session.flush()
    record(Outcome.FAILED, request, username=username or "(sso)")
    messages.error(request, failure.message)
    return redirect("login")


@never_cache
@require_GET
@login_not_required
def oidc_login(request: HttpRequest) -> HttpResponse:
    if not oidc.enabled():
        raise Http404("Single sign-on is not set up.")
    request.session[NEXT_KEY] = _safe_next(request, request.GET.get("next", ""))
    try:
        return oidc.start(request, request.build_absolute_uri(reverse("oidc_callback")))
    except oidc.SignInFailed as failure:
        return _refuse(request, failure)


@never_cache
@require_GET
@login_not_required
def oidc_callback(request: HttpRequest) -> HttpResponse:
    if not oidc.enabled():
        raise Http404("Single sign-on is not set up.")
    next_url = request.session.pop(NEXT_KEY, "")
    try:
        claims = oidc.verify(request)
        outcome = sso_accounts.sign_in(claims, oidc.issuer())
    except oidc.SignInFailed as failure:
        return _refuse(request, failure)
    if not outcome.may_enter:
        logger.warning(
            "SSO sign-in of %s refused: no portal role (IdP groups: %s)",
            outcome.user.username,
            ", ".join(outcome.idp_groups) or "none",
        )
        record(Outcome.FAILED, request, outcome.user)
        request.session.flush()
        request.session[NO_ROLE_KEY] = {
            "username": outcome.user.username,
            "idp_groups": list(outcome.idp_groups),
        }
        return redirect("oidc_no_role")
    login(request, outcome.user, backend=SESSION_BACKEND)
    return HttpResponseRedirect(next_url or reverse(settings.LOGIN_REDIRECT_URL))


@never_cache
@require_GET
@login_not_required
def no_role(request: HttpRequest) -> HttpResponse:
    """Shown instead of a portal whose every page would refuse: who signed in, and the IdP
    groups that give a role."""
    seen = request.session.get(NO_ROLE_KEY)
    if not seen:
        return redirect("login")
    grants = sorted(
        (idp_group, ", ".join(portal_groups))
        for idp_group, portal_groups in settings.OIDC_ROLE_MAP.items()
    )
    return render(
        request,
        "accounts/no_role.html",
        {
            "username": seen["username"],
            "idp_groups": seen["idp_groups"],
            "claim": settings.OIDC_ROLES_CLAIM,
            "grants": grants,
        },
        status=403,
    )


# -- API tokens ----------------------------------------------------------------------------------


def _me(request: HttpRequest) -> User:
    user = request.user
    # LoginRequiredMiddleware: every page but the sign-in ones has a signed-in user.
    assert isinstance(user, User)
    return user


def api_tokens(request: HttpRequest) -> HttpResponse:
    """Each person's own tokens: made here (the key is shown once), listed, revoked."""
    me = _me(request)
    form = TokenForm()
    new_key = ""
    status = 200
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            try:
                token, new_key = tokens.create(me, form.cleaned_data["name"])
            except tokens.DuplicateName:
                form.add_error("name", "You already have a token of that name.")
            else:
                logger.info("API token %s (%s) made by %s", token.prefix, token.name, me)
                form = TokenForm()
        if form.errors:
            status = 400
    context = {
        "form": form,
        "new_key": new_key,
        "tokens": ApiToken.objects.filter(user=me),
        "may_use_api": tokens.may_use_the_api(me),
    }
    return render(request, "accounts/api_tokens.html", context, status=status)


@require_POST
def revoke_api_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = tokens.revoke(_me(request), token_id)
    if token is None:
        raise Http404("You have no API token of that number.")
    logger.info("API token %s (%s) revoked by %s", token.prefix, token.name, request.user)
    messages.success(request, f"Token “{token.name}” is revoked: it no longer works.")
    return redirect("api_tokens")
