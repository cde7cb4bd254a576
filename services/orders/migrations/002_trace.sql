-- Traces (docs/tracing.md). trace_id: the trace of the checkout that placed the
-- order, which the admin sees on it. traceparent: the context the saga's next run
-- continues, so its steps are spans of the request that set them going however late
-- they run: POST /orders's, then a cancel's for the refund.
ALTER TABLE orders ADD COLUMN trace_id TEXT;
ALTER TABLE orders ADD COLUMN traceparent TEXT;
