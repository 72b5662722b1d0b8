"""Users in the console: search, filters, edits and actions, each write an event through services."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from directory import services
from directory.models import Event, User
from tests.admin.conftest import Directory, events_of
from tests.clients import Client

CHANGELIST = reverse("admin:directory_user_changelist")


def change_url(user: User) -> str:
    return reverse("admin:directory_user_change", args=[user.pk])


def listed(client: Client, **params: str) -> set[str]:
    response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return {u.username for u in response.context["cl"].result_list}


def form_data(user: User, **overrides: object) -> dict[str, object]:
    """The change form as the browser posts it, with the user's current values and inlines."""
    data: dict[str, object] = {
        "username": user.username,
        "external_id": user.external_id,
        "is_active": "on" if user.is_active else "",
        "role": user.role,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "display_name": user.display_name,
        "title": user.title,
        "department": user.department,
        "division": user.division,
        "organization": user.organization,
        "cost_center": user.cost_center,
        "employee_number": user.employee_number,
        "manager": user.manager_id or "",
    }
    for prefix, rows, fields in (
        ("emails", list(user.emails.all()), ("type", "value", "primary")),
        ("phone_numbers", list(user.phone_numbers.all()), ("type", "value", "primary")),
        ("addresses", list(user.addresses.all()), ("type", "street_address", "locality", "primary")),
    ):
        data[f"{prefix}-TOTAL_FORMS"] = len(rows)
        data[f"{prefix}-INITIAL_FORMS"] = len(rows)
        for index, row in enumerate(rows):
            data[f"{prefix}-{index}-id"] = row.pk
            data[f"{prefix}-{index}-user"] = user.pk
            for name in fields:
                value = getattr(row, name)
                if name == "primary":
                    if value:
                        data[f"{prefix}-{index}-primary"] = "on"
                else:
                    data[f"{prefix}-{index}-{name}"] = value
    if not user.is_active:
        del data["is_active"]
    data.update(overrides)
    return data


def test_search_finds_exact_username_email_and_external_id(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    assert listed(manager_client, q="OURS.ALICE@CONTOSO.COM") == {ours.alice.username}
    assert listed(manager_client, q="ours-ext-bob") == {ours.bob.username}
    services.user_update(
        tenant=ours.tenant,
        actor=ours.entra,
        user=ours.bob,
        emails=[{"value": "Robert.B@contoso.com", "type": "work", "primary": True}],
    )
    assert listed(manager_client, q="robert.b@contoso.com") == {ours.bob.username}


def test_search_falls_back_to_prefixes_of_username_email_and_names(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    assert listed(manager_client, q="ours.") == {ours.alice.username, ours.bob.username}
    assert listed(manager_client, q="Ali") == {ours.alice.username}
    assert listed(manager_client, q="bob ours") == {ours.bob.username}
    assert listed(manager_client, q="nobody-like-this") == set()


def test_filters_by_active_role_department_and_group(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    services.user_deactivate(tenant=ours.tenant, actor=ours.entra, user=ours.bob)
    assert listed(manager_client, is_active__exact="0") == {ours.bob.username}
    assert listed(manager_client, role="manager") == {manager.username}
    assert listed(manager_client, department="ours-sales") == {ours.alice.username}
    assert listed(manager_client, group=str(ours.group.pk)) == {ours.alice.username}
    assert listed(manager_client, group="not-a-number") == set()


def test_service_principal_is_never_listed(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    usernames = listed(manager_client)
    assert not User.objects.filter(
        tenant=ours.tenant, role=User.Role.SERVICE, username__in=usernames
    ).exists()


def test_list_shows_primary_email_department_and_role(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    body = manager_client.get(CHANGELIST).content.decode()
    assert "ours.alice@contoso.com" in body
    assert "ours-sales" in body
    assert "sl-badge-role" in body


def test_editing_a_user_writes_one_event_through_services(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    data = form_data(ours.alice, title="Head of Sales", **{"emails-0-value": "alice.new@contoso.com"})
    response = manager_client.submit(change_url(ours.alice), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    ours.alice.refresh_from_db()
    assert ours.alice.title == "Head of Sales"
    assert ours.alice.email == "alice.new@contoso.com"
    (event,) = events_of(ours.tenant, "user.update")
    assert event.actor_type == Event.ActorType.MANAGER
    assert event.actor_user == manager
    assert event.changes["title"] == ["", "Head of Sales"]
    assert event.changes["emails"][1][0]["value"] == "alice.new@contoso.com"
    assert not events_of(theirs.tenant, "user.update")


def test_saving_an_unchanged_user_writes_no_event(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(change_url(ours.alice), form_data(ours.alice))
    assert response.status_code == 302
    assert not events_of(ours.tenant, "user.update")


def test_username_taken_is_a_form_error_and_writes_nothing(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        change_url(ours.alice), form_data(ours.alice, username="OURS.BOB@contoso.com")
    )
    assert response.status_code == 200
    assert "already in use" in response.content.decode()
    assert not events_of(ours.tenant, "user.update")


def test_username_of_another_tenant_is_not_taken(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        change_url(ours.alice), form_data(ours.alice, username=theirs.alice.username)
    )
    assert response.status_code == 302
    ours.alice.refresh_from_db()
    assert ours.alice.username == theirs.alice.username


def test_two_primary_emails_are_refused_before_the_service(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    data = form_data(
        ours.alice,
        **{
            "emails-TOTAL_FORMS": 2,
            "emails-1-type": "home",
            "emails-1-value": "alice@home.example",
            "emails-1-primary": "on",
        },
    )
    response = manager_client.submit(change_url(ours.alice), data)
    assert response.status_code == 200
    assert "Only one can be primary" in response.content.decode()
    assert not events_of(ours.tenant, "user.update")


def test_a_manager_from_another_tenant_cannot_be_set(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(change_url(ours.alice), form_data(ours.alice, manager=theirs.bob.pk))
    assert response.status_code == 200
    ours.alice.refresh_from_db()
    assert ours.alice.manager_id is None


def test_setting_the_manager_uses_the_service(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(change_url(ours.alice), form_data(ours.alice, manager=ours.bob.pk))
    assert response.status_code == 302
    (event,) = events_of(ours.tenant, "user.update")
    assert event.changes["manager"] == [None, str(ours.bob.scim_id)]


def test_adding_a_user_creates_it_in_the_hosts_tenant(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    data = {
        "username": "carol@contoso.com",
        "is_active": "on",
        "role": "member",
        "given_name": "Carol",
        "emails-TOTAL_FORMS": 1,
        "emails-INITIAL_FORMS": 0,
        "emails-0-type": "work",
        "emails-0-value": "carol@contoso.com",
        "emails-0-primary": "on",
        "phone_numbers-TOTAL_FORMS": 0,
        "phone_numbers-INITIAL_FORMS": 0,
        "addresses-TOTAL_FORMS": 0,
        "addresses-INITIAL_FORMS": 0,
    }
    response = manager_client.submit(reverse("admin:directory_user_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    carol = User.objects.get(username="carol@contoso.com")
    assert carol.tenant == ours.tenant
    assert carol.email == "carol@contoso.com"
    assert [e.actor_type for e in events_of(ours.tenant, "user.create")][-1] == Event.ActorType.MANAGER
    assert not User.objects.filter(tenant=theirs.tenant, username="carol@contoso.com").exists()


def test_deactivate_and_reactivate_actions_write_events(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    selected = [ours.alice.pk, ours.bob.pk]
    manager_client.submit(CHANGELIST, {"action": "deactivate_users", "_selected_action": selected})
    assert not User.objects.filter(pk__in=selected, is_active=True).exists()
    deactivations = events_of(ours.tenant, "user.deactivate")
    assert {e.resource_id for e in deactivations} == {str(ours.alice.scim_id), str(ours.bob.scim_id)}
    assert {e.actor_user_id for e in deactivations} == {manager.pk}
    manager_client.submit(CHANGELIST, {"action": "reactivate_users", "_selected_action": [ours.alice.pk]})
    ours.alice.refresh_from_db()
    assert ours.alice.is_active
    assert len(events_of(ours.tenant, "user.reactivate")) == 1
    assert not events_of(theirs.tenant, "user.deactivate")


def test_managers_cannot_deactivate_themselves(
    manager_client: Client, manager: User, ours: Directory, theirs: Directory
) -> None:
    manager_client.submit(CHANGELIST, {"action": "deactivate_users", "_selected_action": [manager.pk]})
    manager.refresh_from_db()
    assert manager.is_active


def test_export_is_csv_with_formula_cells_neutralised_and_logged(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    services.user_update(
        tenant=ours.tenant, actor=ours.entra, user=ours.bob, fields={"title": "=HYPERLINK(1)"}
    )
    response = manager_client.submit(
        CHANGELIST, {"action": "export_users_csv", "_selected_action": [ours.alice.pk, ours.bob.pk]}
    )
    assert response["Content-Type"].startswith("text/csv")
    assert "no-store" in response["Cache-Control"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["userName"] for r in rows] == [ours.alice.username, ours.bob.username]
    assert rows[0]["email"] == ours.alice.username
    assert rows[1]["title"] == "'=HYPERLINK(1)"
    (event,) = events_of(ours.tenant, "user.export")
    assert event.detail == "Exported 2 user(s) as CSV."
    assert not events_of(theirs.tenant, "user.export")


def test_deleting_a_user_goes_through_the_service(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.submit(
        reverse("admin:directory_user_delete", args=[ours.bob.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk=ours.bob.pk).exists()
    (event,) = events_of(ours.tenant, "user.delete")
    assert event.resource_id == str(ours.bob.scim_id)
    assert User.objects.filter(pk=theirs.bob.pk).exists()


def test_detail_shows_groups_history_and_the_scim_representation(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    response = manager_client.get(change_url(ours.alice))
    assert [g.pk for g in response.context["console_groups"]] == [ours.group.pk]
    events = [row["event"] for row in response.context["console_events"]]
    assert {e.action for e in events} == {"user.create"}
    assert all(e.tenant_id == ours.tenant.pk for e in events)
    body = response.content.decode()
    assert "ours-sales" in body and "theirs" not in body


def test_scim_representation_is_what_entra_reads(
    manager_client: Client, ours: Directory, theirs: Directory
) -> None:
    """Passes once scim.representation.user_to_scim exists (the SCIM layer provides it)."""
    scim = manager_client.get(change_url(ours.alice)).context["console_scim"]
    assert scim, "SCIM representation unavailable"
    document = json.loads(scim)
    assert document["id"] == str(ours.alice.scim_id)
    assert document["userName"] == ours.alice.username
    assert document["meta"]["resourceType"] == "User"
    assert document["meta"]["location"] == f"http://contoso.testserver/scim/v2/Users/{ours.alice.scim_id}"
    assert [g["value"] for g in document["groups"]] == [str(ours.group.scim_id)]


def test_history_link_opens_the_users_log(manager_client: Client, ours: Directory, theirs: Directory) -> None:
    response = manager_client.get(reverse("admin:directory_user_history", args=[ours.alice.pk]))
    assert response.status_code == 302
    assert response["Location"].endswith(f"?q={ours.alice.scim_id}")


@pytest.mark.parametrize("field", ["scim_id", "created", "last_modified", "version"])
def test_identifiers_and_timestamps_are_read_only(
    manager_client: Client, ours: Directory, theirs: Directory, field: str
) -> None:
    form = manager_client.get(change_url(ours.alice)).context["adminform"].form
    assert field not in form.fields
