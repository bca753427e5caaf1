"""The admin: calls and what hangs off them, recordings, the access log,
API tokens and users' sign-in; the site under the product's name."""

from django.contrib import admin

from . import access, calls, recordings, tokens, users, webhooks  # noqa: F401

admin.site.site_header = "callrecorder"
admin.site.site_title = "callrecorder admin"
admin.site.index_title = "Calls, recordings and their access log"
# Django's app list beside every page takes 300 px of a laptop's width from
# the changelists; the header and the breadcrumbs lead back to the index.
admin.site.enable_nav_sidebar = False
