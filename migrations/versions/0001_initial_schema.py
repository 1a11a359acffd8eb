"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:29:49.232404
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=True),
    sa.Column('task_name', sa.String(length=255), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('args', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('kwargs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('integration', sa.String(length=128), nullable=True),
    sa.Column('endpoint_id', sa.Uuid(), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('traceback', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('first_failed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_failed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replay_task_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("origin IN ('call', 'webhook', 'delivery', 'poison')", name=op.f('ck_dead_letters_origin')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    op.create_index(op.f('ix_dead_letters_error_code'), 'dead_letters', ['error_code'], unique=False)
    op.create_index(op.f('ix_dead_letters_tenant_id_last_failed_at'), 'dead_letters', ['tenant_id', 'last_failed_at'], unique=False)
    op.create_table('integrations',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('adapter', sa.String(length=64), nullable=False),
    sa.Column('base_url', sa.Text(), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('auth_type', sa.String(length=32), server_default='none', nullable=False),
    sa.Column('credentials', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='active', nullable=False),
    sa.Column('health_status', sa.String(length=16), server_default='unknown', nullable=False),
    sa.Column('last_health_check_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rate_limit_per_minute', sa.Integer(), nullable=True),
    sa.Column('rate_limit_per_hour', sa.Integer(), nullable=True),
    sa.Column('rate_limit_per_day', sa.Integer(), nullable=True),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('fallback_integration_id', sa.Uuid(), nullable=True),
    sa.Column('cost_per_call', sa.Numeric(precision=12, scale=6), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("auth_type IN ('none', 'api_key', 'bearer', 'basic', 'oauth2_client_credentials', 'oauth2_refresh', 'oauth2_authorization_code', 'hmac', 'google_service_account')", name=op.f('ck_integrations_auth_type')),
    sa.CheckConstraint("health_status IN ('unknown', 'healthy', 'degraded')", name=op.f('ck_integrations_health_status')),
    sa.CheckConstraint("status IN ('active', 'disabled')", name=op.f('ck_integrations_status')),
    sa.ForeignKeyConstraint(['fallback_integration_id'], ['integrations.id'], name=op.f('fk_integrations_fallback_integration_id_integrations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integrations')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_integrations_tenant_id_name'))
    )
    op.create_table('scheduled_tasks',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=True),
    sa.Column('task_name', sa.String(length=255), nullable=False),
    sa.Column('kwargs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'enqueued', 'cancelled')", name=op.f('ck_scheduled_tasks_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scheduled_tasks'))
    )
    op.create_index(op.f('ix_scheduled_tasks_status_due_at'), 'scheduled_tasks', ['status', 'due_at'], unique=False)
    op.create_table('subscriptions',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('event_types', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('retry_schedule', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    op.create_index(op.f('ix_subscriptions_tenant_id_active'), 'subscriptions', ['tenant_id', 'active'], unique=False)
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('scheme', sa.String(length=32), nullable=False),
    sa.Column('secret', sa.Text(), nullable=True),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('tolerance_seconds', sa.Integer(), server_default='300', nullable=False),
    sa.Column('allowed_ips', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('event_types', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'"), nullable=False),
    sa.Column('rate_limit_per_minute', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('received_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('duplicate_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rejected_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('last_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    sa.UniqueConstraint('token', name=op.f('uq_webhook_endpoints_token'))
    )
    op.create_index(op.f('ix_webhook_endpoints_tenant_id_source'), 'webhook_endpoints', ['tenant_id', 'source'], unique=False)
    op.create_table('cache_entries',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=True),
    sa.Column('operation', sa.String(length=128), nullable=False),
    sa.Column('response', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('etag', sa.String(length=255), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hit_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_cache_entries_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cache_entries')),
    sa.UniqueConstraint('tenant_id', 'key_hash', name=op.f('uq_cache_entries_tenant_id_key_hash'))
    )
    op.create_index(op.f('ix_cache_entries_expires_at'), 'cache_entries', ['expires_at'], unique=False)
    op.create_index(op.f('ix_cache_entries_tenant_id_integration_id_operation'), 'cache_entries', ['tenant_id', 'integration_id', 'operation'], unique=False)
    op.create_table('call_results',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('operation', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='running', nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('running', 'succeeded')", name=op.f('ck_call_results_status')),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_call_results_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_results')),
    sa.UniqueConstraint('tenant_id', 'integration_id', 'idempotency_key', name=op.f('uq_call_results_tenant_id_integration_id_idempotency_key'))
    )
    op.create_table('integration_logs',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=True),
    sa.Column('operation', sa.String(length=128), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('request_headers', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('request_body', sa.Text(), nullable=True),
    sa.Column('response_headers', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempt', sa.Integer(), server_default='1', nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('estimated_cost', sa.Numeric(precision=12, scale=6), server_default='0', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("outcome IN ('success', 'failed', 'cached', 'rate_limited', 'circuit_open', 'dead_lettered')", name=op.f('ck_integration_logs_outcome')),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_integration_logs_integration_id_integrations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integration_logs'))
    )
    op.create_index(op.f('ix_integration_logs_started_at'), 'integration_logs', ['started_at'], unique=False)
    op.create_index(op.f('ix_integration_logs_tenant_id_integration_id_started_at'), 'integration_logs', ['tenant_id', 'integration_id', 'started_at'], unique=False)
    op.create_table('usage',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('integration_id', sa.Uuid(), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('calls', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('failures', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('cost', sa.Numeric(precision=14, scale=6), server_default='0', nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("period IN ('hour', 'day')", name=op.f('ck_usage_period')),
    sa.ForeignKeyConstraint(['integration_id'], ['integrations.id'], name=op.f('fk_usage_integration_id_integrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage')),
    sa.UniqueConstraint('tenant_id', 'integration_id', 'period', 'period_start', name=op.f('uq_usage_tenant_id_integration_id_period_period_start'))
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('endpoint_id', sa.Uuid(), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.String(length=255), nullable=True),
    sa.Column('headers', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'processing', 'processed', 'failed', 'dead')", name=op.f('ck_webhook_events_status')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_events_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('endpoint_id', 'external_id', name=op.f('uq_webhook_events_endpoint_id_external_id'))
    )
    op.create_index(op.f('ix_webhook_events_status_next_attempt_at'), 'webhook_events', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_webhook_events_tenant_id_received_at'), 'webhook_events', ['tenant_id', 'received_at'], unique=False)
    op.create_table('deliveries',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('subscription_id', sa.Uuid(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('message_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_response_excerpt', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_duration_ms', sa.Integer(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'delivering', 'succeeded', 'failed', 'dead', 'cancelled')", name=op.f('ck_deliveries_status')),
    sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'], name=op.f('fk_deliveries_event_id_webhook_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_deliveries_subscription_id_subscriptions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('subscription_id', 'event_id', name=op.f('uq_deliveries_subscription_id_event_id'))
    )
    op.create_index(op.f('ix_deliveries_status_next_attempt_at'), 'deliveries', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_deliveries_tenant_id_created_at'), 'deliveries', ['tenant_id', 'created_at'], unique=False)
    op.create_table('delivery_attempts',
    sa.Column('id', sa.Uuid(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response_excerpt', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('attempted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_delivery_attempts_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_attempts'))
    )
    op.create_index(op.f('ix_delivery_attempts_delivery_id_attempted_at'), 'delivery_attempts', ['delivery_id', 'attempted_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_delivery_attempts_delivery_id_attempted_at'), table_name='delivery_attempts')
    op.drop_table('delivery_attempts')
    op.drop_index(op.f('ix_deliveries_tenant_id_created_at'), table_name='deliveries')
    op.drop_index(op.f('ix_deliveries_status_next_attempt_at'), table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_index(op.f('ix_webhook_events_tenant_id_received_at'), table_name='webhook_events')
    op.drop_index(op.f('ix_webhook_events_status_next_attempt_at'), table_name='webhook_events')
    op.drop_table('webhook_events')
    op.drop_table('usage')
    op.drop_index(op.f('ix_integration_logs_tenant_id_integration_id_started_at'), table_name='integration_logs')
    op.drop_index(op.f('ix_integration_logs_started_at'), table_name='integration_logs')
    op.drop_table('integration_logs')
    op.drop_table('call_results')
    op.drop_index(op.f('ix_cache_entries_tenant_id_integration_id_operation'), table_name='cache_entries')
    op.drop_index(op.f('ix_cache_entries_expires_at'), table_name='cache_entries')
    op.drop_table('cache_entries')
    op.drop_index(op.f('ix_webhook_endpoints_tenant_id_source'), table_name='webhook_endpoints')
    op.drop_table('webhook_endpoints')
    op.drop_index(op.f('ix_subscriptions_tenant_id_active'), table_name='subscriptions')
    op.drop_table('subscriptions')
    op.drop_index(op.f('ix_scheduled_tasks_status_due_at'), table_name='scheduled_tasks')
    op.drop_table('scheduled_tasks')
    op.drop_table('integrations')
    op.drop_index(op.f('ix_dead_letters_tenant_id_last_failed_at'), table_name='dead_letters')
    op.drop_index(op.f('ix_dead_letters_error_code'), table_name='dead_letters')
    op.drop_table('dead_letters')
