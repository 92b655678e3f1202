from django.urls import path

from requests_app import views

urlpatterns = [
    path("requests/", views.request_list, name="request_list"),
    path("requests/mine/", views.my_requests, name="my_requests"),
    path("requests/new/", views.new_request_choose, name="new_request_choose"),
    path("requests/new/<str:kind>/", views.new_request, name="new_request"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/edit/", views.edit_request, name="edit_request"),
    path("requests/<int:pk>/actions/<str:action>/", views.request_action, name="request_action"),
    path("requests/<int:pk>/comments/", views.request_comment, name="request_comment"),
    path("requests/<int:pk>/runs/", views.request_runs, name="request_runs"),
    path("approvals/", views.approvals, name="approvals"),
    path("queue/", views.devops_queue, name="devops_queue"),
    path("access/", views.access_list, name="access_list"),
    path("instances/", views.instance_list, name="instance_list"),
    path("instances/<str:slug>/", views.instance_detail, name="instance_detail"),
    path("instances/<str:slug>/verify/", views.instance_verify, name="instance_verify"),
    path("instances/<str:slug>/live/", views.instance_live, name="instance_live"),
]
