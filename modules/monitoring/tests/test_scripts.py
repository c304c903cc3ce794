"""The script library on the real database: versions and hashes, four-eyes approval (a refusal writes
nothing), an edit withdraws the approval, what a command gets."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.problems import InvalidInput, NotFound, PermissionDenied
from controlplane.providers.models import Provider
from modules.monitoring.models import Script
from modules.monitoring.services import (
    ScriptChanged,
    ScriptNotApproved,
    script_approve,
    script_create,
    script_for_command,
    script_update,
)
from modules.records.models import ActivityEntry
from tenants.models import Tenant

BODY = 'echo "cleaning $ITSM_PARAM_PATH"\n'


def admin_of(provider: Provider, tenant: Tenant, email: str) -> User:
    user = make_user(email)
    tenant_grant(
        membership=provider_membership_set(user=user, provider=provider, role="admin"), tenant=tenant
    )
    return user


def test_four_eyes_approval_and_what_a_command_gets(
    provider: Provider, tenant_a: Tenant, tech_a: User
) -> None:
    admin_user = admin_of(provider, tenant_a, "admin.a@northwind.example")
    with tenant_context(tenant_a):
        tech, admin = actor_in(tenant_a, tech_a), actor_in(tenant_a, admin_user, "admin")
        script = script_create(
            actor=tech, name="Clean temp", interpreter="sh", body=BODY, parameters=["PATH_1", "Days"]
        )
        assert (script.version, script.sha256) == (1, hashlib.sha256(BODY.encode()).hexdigest())
        assert (script.author_user_id, script.approved_by_user_id) == (tech_a.pk, None)
        with pytest.raises(ScriptNotApproved):
            script_for_command(script_id=script.pk)
        # A technician may not approve; the admin may not approve what they wrote.
        entries = ActivityEntry.objects.count()
        with pytest.raises(PermissionDenied):
            script_approve(actor=tech, script=script, version=1)
        own = script_create(actor=admin, name="Admin's", interpreter="python", body="print(1)\n")
        with pytest.raises(PermissionDenied):
            script_approve(actor=admin, script=own, version=1)
        assert ActivityEntry.objects.count() == entries + 1  # only own's creation
        assert not Script.objects.filter(approved_by_user_id__isnull=False).exists()
        with pytest.raises(ScriptChanged):
            script_approve(actor=admin, script=script, version=2)
        script_approve(actor=admin, script=script, version=1)
        approved = script_for_command(script_id=script.pk)
        assert (approved.body, approved.version, approved.interpreter) == (BODY, 1, "sh")
        assert (approved.author_user_id, approved.approved_by_user_id) == (tech_a.pk, admin_user.pk)
        assert approved.sha256 == hashlib.sha256(BODY.encode()).hexdigest()
        assert approved.parameters == ("PATH_1", "Days")
        # An edit is a new version by its editor, no longer approved; an edit without change is nothing.
        same = script_update(
            actor=admin,
            script=script,
            name="Clean temp",
            interpreter="sh",
            body=BODY,
            parameters=["PATH_1", "Days"],
        )
        assert (same.version, same.approved_by_user_id) == (1, admin_user.pk)
        edited = script_update(
            actor=admin, script=script, name="Clean temp", interpreter="sh", body=BODY + "true\n"
        )
        assert (edited.version, edited.author_user_id, edited.approved_by_user_id) == (2, admin_user.pk, None)
        with pytest.raises(ScriptNotApproved):
            script_for_command(script_id=script.pk)
        # The technician lacks agents.approve; the admin wrote version 2: neither may approve it.
        with pytest.raises(PermissionDenied):
            script_approve(actor=tech, script=edited, version=2)
        with pytest.raises(PermissionDenied):
            script_approve(actor=admin, script=edited, version=2)
        with pytest.raises(NotFound):
            script_for_command(script_id=uuid.uuid4())


def test_bad_scripts_are_refused_naming_the_field(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        with pytest.raises(InvalidInput) as caught:
            script_create(actor=tech, name=" ", interpreter="bash", body="", parameters=["1x", "ok"])
        fields = {e["field"] for e in caught.value.extra["errors"]}
        assert fields == {"name", "interpreter", "body", "parameters"}
        script_create(actor=tech, name="Once", interpreter="sh", body="true\n")
        with pytest.raises(InvalidInput):
            script_create(actor=tech, name="once", interpreter="sh", body="true\n")
        assert Script.objects.count() == 1


def test_end_users_and_client_admins_cannot_write_scripts(tenant_a: Tenant, end_user_a: User) -> None:
    with tenant_context(tenant_a):
        for role in ("end_user", "client_admin"):
            with pytest.raises(PermissionDenied):
                script_create(
                    actor=actor_in(tenant_a, end_user_a, role), name="x", interpreter="sh", body="true\n"
                )
        assert not Script.objects.exists()
        assert not ActivityEntry.objects.filter(record_type="script").exists()
