"""refundguard: keeps in-app-purchase access in step with Apple and Google refunds."""
