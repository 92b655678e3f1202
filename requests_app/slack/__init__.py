"""Approvals in Slack (docs/slack.md): a request waiting for approval or tech review is posted to
a channel with Approve / Reject buttons, and the buttons take the same workflow actions as the
portal's pages, as the person who clicked.

- `stages`: the two stages a message asks for, and the actions of their buttons.
- `api`: the Slack Web API calls, through Slack's own client, at SLACK_API_URL.
- `messages`: what a message and the reject dialog say (Block Kit).
- `outbox`: the rows the notification outbox sends after commit: post the message, then edit
  it as the request moves.
- `interactions`: what Slack sends when someone clicks (checked signature, repeats recognised).
- `views`: the endpoint Slack posts to, `POST /slack/interactions/`.
"""
