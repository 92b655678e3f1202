"""The Releases pages: every role reads them; DevOps record releases, set maintenance windows
and run rollout waves. No rules here: releases.opening and releases.waves decide."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal import roles
from provisioning import instances
from releases import opening, progress, sync, waves
from releases.forms import ReleaseForm, WindowForm
from releases.models import Release, Wave
from requests_app import workflow


def _reader(request: HttpRequest) -> None:
    if not workflow.can_read(request.user):
        raise PermissionDenied("Your account has no role in the portal.")


def _devops(request: HttpRequest, what: str) -> None:
    if not roles.has_role(request.user, roles.DEVOPS):
        raise PermissionDenied(f"Only DevOps {what}.")


def _release(version: str) -> Release:
    found = Release.objects.named(version)
    if found is None:
        raise Http404("No such release.")
    return found


def release_list(request: HttpRequest) -> HttpResponse:
    _reader(request)
    form = ReleaseForm()
    if request.method == "POST":
        _devops(request, "record releases")
        form = ReleaseForm(request.POST)
        if form.is_valid():
            now = timezone.now()
            release, created = opening.record(
                form.cleaned_data["version"],
                form.published(now),
                emergency=bool(form.kind()),
                notes_url=form.cleaned_data["notes_url"],
                user=request.user,  # type: ignore[arg-type]  # _devops: a signed-in User
                now=now,
            )
            if created:
                opened = len(progress.upgrades(release))
                messages.success(
                    request,
                    f"Release {release.version} recorded ({release.get_kind_display().lower()}): "
                    f"{opened} upgrade request{'s' if opened != 1 else ''} open.",
                )
                return redirect("release_detail", release.version)
            form.add_error("version", f"{release.version} is already recorded.")
    now = timezone.now()
    rows = []
    newest = Release.objects.newest()
    for release in Release.objects.newest_first()[:50]:
        due = progress.due_at(release)
        rows.append({"release": release, "due_at": due, "overdue": due < now})
    return render(
        request,
        "releases/release_list.html",
        {
            "rows": rows,
            "newest": newest,
            "form": form,
            "can_record": roles.has_role(request.user, roles.DEVOPS),
            "feed": sync.status(),
            "feed_url": settings.RELEASES_FEED_URL,
        },
    )


def release_detail(request: HttpRequest, version: str) -> HttpResponse:
    _reader(request)
    release = _release(version)
    now = timezone.now()
    due = progress.due_at(release)
    rows = progress.rows(release)
    wave_list = [
        {"wave": w, "views": waves.view(w), "status": waves.status_of(w)}
        for w in release.waves.select_related("created_by", "confirmed_by").order_by("-number")
    ]
    done = sum(1 for r in rows if r["state"] == "done")
    return render(
        request,
        "releases/release_detail.html",
        {
            "release": release,
            "due_at": due,
            "left": due - now,
            "overdue": due < now,
            "rows": rows,
            "done": done,
            "waves": wave_list,
            "suggested": waves.suggest(release),
            "is_devops": roles.has_role(request.user, roles.DEVOPS),
            "newest": Release.objects.newest() == release,
        },
    )


@require_POST
def new_wave(request: HttpRequest, version: str) -> HttpResponse:
    _reader(request)
    _devops(request, "run rollout waves")
    release = _release(version)
    slugs = request.POST.getlist("instances")
    try:
        wave = waves.create(
            release,
            slugs,
            request.user,  # type: ignore[arg-type]
            override_window=request.POST.get("override_window") == "on",
        )
    except workflow.WorkflowError as exc:
        details = [m for ms in exc.errors.values() for m in ms]
        messages.error(request, " ".join([exc.message, *details]))
    else:
        count = wave.items.count()
        messages.success(
            request,
            f"Wave {wave.number}: {count} upgrade{'s' if count != 1 else ''} picked up and being "
            "planned. Reload to see the plans; confirm the wave when they are ready.",
        )
    return redirect("release_detail", release.version)


@require_POST
def confirm_wave(request: HttpRequest, version: str, wave_id: int) -> HttpResponse:
    _reader(request)
    _devops(request, "run rollout waves")
    release = _release(version)
    wave = get_object_or_404(Wave, pk=wave_id, release=release)
    override = request.POST.get("override_window") == "on"
    try:
        waves.confirm(wave, request.user, override_window=override or None)  # type: ignore[arg-type]
    except workflow.WorkflowError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Wave {wave.number} confirmed: its upgrades apply as allowed.")
    return redirect("release_detail", release.version)


@require_POST
def instance_window(request: HttpRequest, slug: str) -> HttpResponse:
    _reader(request)
    _devops(request, "set maintenance windows")
    instance = instances.latest(slug)
    if instance is None:
        raise Http404("No such instance.")
    form = WindowForm(request.POST, instance=instance)
    if form.is_valid():
        form.save()
        messages.success(request, f"Maintenance window of {slug} saved.")
    else:
        errors = [str(m) for ms in form.errors.values() for m in ms]
        messages.error(request, "The window was not saved: " + " ".join(errors))
    return redirect("instance_detail", slug)
