from django.urls import path

from . import views

urlpatterns = [
    path("webhooks/answer", views.answer),
    path("webhooks/event", views.event),
]
