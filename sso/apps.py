from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    label = "sso"
    verbose_name = "Single sign-on: SAML connections of tenants and providers"

    def ready(self) -> None:
        from django.conf import settings
        from onelogin.saml2.constants import OneLogin_Saml2_Constants

        # python3-saml reads its clock-skew allowance from this class attribute (seconds; SAML 2.0 core
        # leaves the bound to the relying party). One value for the whole process, from settings.
        OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = settings.SAML_CLOCK_SKEW_SECONDS
