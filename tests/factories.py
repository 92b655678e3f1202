"""Small factory functions for tests (no fixture files)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from provisioning.models import Instance

PASSWORD = "correct-horse-battery"


def make_user(username, *groups, superuser=False, password=PASSWORD):
    User = get_user_model()
    user = User.objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password=password,
        is_superuser=superuser,
        is_staff=superuser,
    )
    for name in groups:
        # get_or_create: transactional tests flush the groups that the migration made.
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


def make_instance(slug="acme", **fields):
    defaults = {
        "customer": slug.title(),
        "status": "active",
        "gcp_project": f"mi-{slug}",
        "version": "5.0.0",
    }
    return Instance.objects.create(slug=slug, **{**defaults, **fields})


def apply_run_by_hand(devops, request_id, confirmer=None):
    """Bring a provisioning request to done the only way there is, through a run that applies,
    but without a worker or Terraform: the run moves through its states with Run's own methods
    and the instance changes as an applied run changes it."""
    from django.utils import timezone

    from provisioning import outcomes, runs, signals
    from provisioning.models import Run
    from requests_app import workflow

    workflow.perform(devops, request_id, "plan", notify=False)
    run = runs.latest_run(request_id)
    assert run.claim("plan", "test-worker", timezone.now())
    destroyed = ["module.instance.terraform_data.project"] if run.kind == "teardown" else []
    summary = {"add": 0, "change": 0, "destroy": len(destroyed), "destroyed": destroyed}
    assert run.mark_planned(b"plan", "plan text", summary, "digest")
    slug = run.instance.slug
    if confirmer is None and run.needs_second_person():
        confirmer = get_user_model().objects.filter(groups__name="DevOps").exclude(
            pk=devops.pk
        ).first() or make_user(f"second-{devops.username}", "DevOps")
    workflow.perform(confirmer or devops, request_id, "confirm", confirm=slug, notify=False)
    run.refresh_from_db()
    assert run.claim("apply", "test-worker", timezone.now())
    now = timezone.now()
    assert run.mark_applied({}, now)
    instance = run.instance
    if run.kind == "suspend":
        instance.outputs = {**instance.outputs, "snapshot": f"{slug}-blue-s{run.pk}"}
    outcomes.apply_outcome(instance, run.kind, run.params, {})
    signals.run_applied.send(Run, run=run, at=now)
    return run
