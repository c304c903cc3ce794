"""The connection form of the console pages (tenant and provider connections)."""

from __future__ import annotations

from typing import Any

from django import forms

from controlplane.accounts.models import TenantRole

METADATA_MAX_BYTES = 512 * 1024


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100, label="Name", help_text="For example “Acme Entra ID”.")
    metadata_xml = forms.CharField(
        required=False,
        label="Identity provider metadata (XML)",
        help_text="Paste the IdP's SAML 2.0 metadata, or upload the file below. When editing, leave both "
        "empty to keep the current IdP settings.",
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
    )
    metadata_file = forms.FileField(
        required=False,
        label="…or upload the metadata file",
        help_text="An .xml file of at most 512 KiB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".xml,application/xml,text/xml"}),
    )
    email_domains = forms.CharField(
        required=False,
        max_length=2000,
        label="Email domains",
        help_text="Comma-separated, for example acme.example, acme-corp.example. People whose email is in "
        "one of them are sent to this IdP; an assertion naming another domain is refused.",
    )
    role_rules = forms.CharField(
        required=False,
        label="Role mapping (JSON)",
        help_text='For example [{"attribute": "groups", "value": "IT-Admins", "role": "client_admin"}]. '
        "The first matching rule gives the role of a user signing in for the first time.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )
    default_role = forms.ChoiceField(
        choices=TenantRole.choices,
        initial=TenantRole.END_USER,
        label="Role when no rule matches",
        help_text="Users created by a first sign-in get this role in the client.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, tenant_owned: bool, editing: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not tenant_owned:  # technicians always start as technicians without grants
            del self.fields["role_rules"]
            del self.fields["default_role"]
        if not editing:
            del self.fields["is_active"]
        for name, field in self.fields.items():
            if field.help_text:
                field.widget.attrs["aria-describedby"] = f"id_{name}_help"

    def clean_metadata_file(self) -> str:
        """The uploaded file's text (UTF-8), or "" without a file."""
        upload = self.cleaned_data.get("metadata_file")
        if not upload:
            return ""
        raw = upload.read(METADATA_MAX_BYTES + 1)
        if len(raw) > METADATA_MAX_BYTES:
            raise forms.ValidationError("The file is larger than 512 KiB.")
        return str(raw.decode("utf-8", errors="replace"))

    def metadata_text(self) -> str:
        """The pasted metadata, else the uploaded file's text; "" when neither was given."""
        return str(self.cleaned_data.get("metadata_xml") or "") or str(
            self.cleaned_data.get("metadata_file") or ""
        )


class OidcConnectionForm(forms.Form):
    """An OpenID Connect connection: which provider, our client registration there, and who signs in."""

    name = forms.CharField(max_length=100, label="Name", help_text="For example “Acme Entra ID”.")
    kind = forms.ChoiceField(
        choices=[
            ("generic", "OpenID Connect (any issuer)"),
            ("entra", "Microsoft Entra ID"),
            ("google", "Google"),
        ],
        label="Provider",
        help_text="Entra ID and Google fill in the issuer; for any other provider give its issuer URL.",
    )
    issuer = forms.CharField(
        required=False,
        max_length=1024,
        label="Issuer URL (other providers)",
        help_text="For example https://id.acme.example: its discovery document is at "
        "<issuer>/.well-known/openid-configuration.",
    )
    entra_tenant = forms.CharField(
        required=False,
        max_length=100,
        label="Entra ID directory (tenant) id",
        help_text="The issuer becomes https://login.microsoftonline.com/<directory id>/v2.0.",
    )
    client_id = forms.CharField(max_length=255, label="Client id", help_text="The application (client) id.")
    client_secret = forms.CharField(
        required=False,
        max_length=1024,
        label="Client secret",
        help_text="When editing, leave empty to keep the current secret.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    email_domains = ConnectionForm.base_fields["email_domains"]
    role_rules = forms.CharField(
        required=False,
        label="Role mapping (JSON)",
        help_text='For example [{"attribute": "groups", "value": "IT-Admins", "role": "client_admin"}]: '
        "the attribute is a claim of the ID token or userinfo. The first matching rule gives the role of a "
        "user signing in for the first time.",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )
    default_role = ConnectionForm.base_fields["default_role"]
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, tenant_owned: bool, editing: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not tenant_owned:  # technicians always start as technicians without grants
            del self.fields["role_rules"]
            del self.fields["default_role"]
        if not editing:
            del self.fields["is_active"]
            self.fields["client_secret"].help_text = "The secret the provider issued for this client."
        for name, field in self.fields.items():
            if field.help_text:
                field.widget.attrs["aria-describedby"] = f"id_{name}_help"
