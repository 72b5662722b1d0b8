"""Groups in the console: member counts, member management through membership services."""

from __future__ import annotations

import pytest
from django.urls import reverse

from directory import services
from directory.models import Event, Group, Membership, User
from tests.admin.conftest import Directory, events_of
from tests.clients import Client

CHANGELIST = reverse("admin:directory_group_changelist")


def change_url(group: Group) -> str:
    return reverse("admin:directory_group_change", args=[group.pk])


def form_data(group: Group, **overrides: object) -> dict[str, object]:
    memberships = list(Membership.objects.filter(group=group).order_by("user__username"))
    data: dict[str, object] = {
        "display_name": group.display_name,
        "external_id": group.external_id,
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": len(memberships),
    }
    for index, membership in enumerate(memberships):
        data[f"memberships-{index}-id"] = membership.pk
        data[f"memberships-{index}-group"] = group.pk
    data.update(overrides)
    return data


def test_changelist_shows_member_counts(manager_client: Client, ours: Directory, theirs: Directory) -> None:
    services.membership_add(tenant=ours.tenant, actor=ours.entra, group=ours.group, users=[ours.bob])
    services.group_create(tenant=ours.tenant, actor=ours.entra, display_name="Empty")
    response = manager_client.get(CHANGELIST)
    counts = {g.display_name: g.members_total for g in response.context["cl"].result_list}
    assert counts == {"Empty": 0, "Ours Staff": 2}
    assert f"?group={ours.group.pk}" in response.content.decode()


def test_search_by_display_name_prefix_and_external_id(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    services.group_update(tenant=ours.tenant, actor=ours.entra, group=ours.group, external_id="entra-42")
    for term in ("ours st", "entra-42"):
        response = manager_client.get(CHANGELIST, {"q": term})
        assert [g.pk for g in response.context["cl"].result_list] == [ours.group.pk]


def test_adding_members_uses_membership_add(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(change_url(ours.group), form_data(ours.group, add_members=[ours.bob.pk]))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert set(ours.group.members.all()) == {ours.alice, ours.bob}
    (event,) = events_of(ours.tenant, "group.members_add")
    assert event.changes == {"members": {"added": [str(ours.bob.scim_id)]}}
    assert event.actor_user == manager


def test_removing_members_by_picker_and_by_tick_uses_membership_remove(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    services.membership_add(tenant=ours.tenant, actor=ours.entra, group=ours.group, users=[ours.bob])
    data = form_data(ours.group, remove_members=[ours.bob.pk])
    data["memberships-0-DELETE"] = "on"  # alice, first by userName
    response = manager_client.submit(change_url(ours.group), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not ours.group.members.exists()
    (event,) = events_of(ours.tenant, "group.members_remove")
    assert sorted(event.changes["members"]["removed"]) == sorted(
        [str(ours.alice.scim_id), str(ours.bob.scim_id)]
    )


def test_another_tenants_user_cannot_be_added(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        change_url(ours.group), form_data(ours.group, add_members=[theirs.bob.pk])
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not ours.group.members.filter(pk=theirs.bob.pk).exists()
    assert not events_of(ours.tenant, "group.members_add")


def test_another_tenants_membership_id_in_the_inline_is_ignored(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    theirs_membership = Membership.objects.get(group=theirs.group)
    data = form_data(ours.group)
    data["memberships-0-id"] = theirs_membership.pk
    data["memberships-0-DELETE"] = "on"
    manager_client.submit(change_url(ours.group), data)
    assert Membership.objects.filter(pk=theirs_membership.pk).exists()
    assert not events_of(theirs.tenant, "group.members_remove")


def test_renaming_uses_group_update_and_a_taken_name_is_a_form_error(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    services.group_create(tenant=ours.tenant, actor=ours.entra, display_name="Finance")
    refused = manager_client.submit(change_url(ours.group), form_data(ours.group, display_name="FINANCE"))
    assert refused.status_code == 200
    assert "already exists" in refused.content.decode()
    accepted = manager_client.submit(
        change_url(ours.group), form_data(ours.group, display_name=theirs.group.display_name)
    )
    assert accepted.status_code == 302
    (event,) = events_of(ours.tenant, "group.update")
    assert event.changes == {"displayName": ["Ours Staff", "Theirs Staff"]}


def test_creating_a_group_with_members(manager_client: Client, ours: Directory, theirs: Directory) -> None:
    data = {
        "display_name": "Engineering",
        "external_id": "",
        "add_members": [ours.alice.pk, ours.bob.pk],
        "memberships-TOTAL_FORMS": 0,
        "memberships-INITIAL_FORMS": 0,
    }
    response = manager_client.submit(reverse("admin:directory_group_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    group = Group.objects.get(tenant=ours.tenant, display_name="Engineering")
    assert set(group.members.all()) == {ours.alice, ours.bob}
    event = events_of(ours.tenant, "group.create")[-1]
    assert event.actor_type == Event.ActorType.MANAGER
    assert len(event.changes["members"]["added"]) == 2


def test_deleting_a_group_goes_through_the_service(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        reverse("admin:directory_group_delete", args=[ours.group.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Group.objects.filter(pk=ours.group.pk).exists()
    assert events_of(ours.tenant, "group.delete")
    assert Group.objects.filter(pk=theirs.group.pk).exists()


def test_member_preview_is_capped(
    manager_client: Client, ours: Directory, theirs: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("directory.admin.GROUP_MEMBER_PREVIEW", 1)
    services.membership_add(tenant=ours.tenant, actor=ours.entra, group=ours.group, users=[ours.bob])
    response = manager_client.get(change_url(ours.group))
    (inline,) = response.context["inline_admin_formsets"]
    assert [form.instance.user for form in inline.formset.forms] == [ours.alice]
    assert response.context["console_members_url"].endswith(f"?group={ours.group.pk}")
