"""The branded portal's own pages (home, help articles) on a tenant's host. Views only: they read
through the tenant modules' selectors; no models of their own."""
