from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "controlplane.accounts"
    label = "accounts"
    verbose_name = "Accounts: users, memberships, API tokens"

    def ready(self) -> None:
        from .receivers import connect

        connect()
