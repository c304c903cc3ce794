from django.apps import AppConfig


class MailinConfig(AppConfig):
    name = "controlplane.mailin"
    label = "mailin"
    verbose_name = "Email in: inbound addresses, mailboxes and the raw messages received"
