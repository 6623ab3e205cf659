"""Reminder rules (issue 14): scheduled, in the CRM's time zone, once per occasion."""
