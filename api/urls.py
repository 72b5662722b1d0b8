"""/api/v1/ (the read-only directory API) and its OpenAPI schema; /api/docs/ on the root host."""

from django.urls import path

from api import views

app_name = "api"
urlpatterns = [
    path("users/", views.UserListView.as_view(), name="users"),
    path("users/<str:user_id>/", views.UserDetailView.as_view(), name="user"),
    path("users/<str:user_id>/groups/", views.UserGroupsView.as_view(), name="user-groups"),
    path("groups/", views.GroupListView.as_view(), name="groups"),
    path("groups/<str:group_id>/", views.GroupDetailView.as_view(), name="group"),
    path("groups/<str:group_id>/members/", views.GroupMembersView.as_view(), name="group-members"),
    path("events/", views.EventFeedView.as_view(), name="events"),
]
