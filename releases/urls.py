from django.urls import path
from rest_framework.routers import DefaultRouter

from releases import api, views
from requests_app.api_urls import _api

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("releases", api.ReleaseViewSet, basename="api-release")

api_urlpatterns = _api(list(router.urls))

urlpatterns = [
    path("releases/", views.release_list, name="release_list"),
    path("releases/<str:version>/", views.release_detail, name="release_detail"),
    path("releases/<str:version>/waves/", views.new_wave, name="release_new_wave"),
    path(
        "releases/<str:version>/waves/<int:wave_id>/confirm/",
        views.confirm_wave,
        name="release_confirm_wave",
    ),
    path("instances/<slug:slug>/window/", views.instance_window, name="instance_window"),
]
