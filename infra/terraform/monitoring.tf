# Monitoring as code, from the files in infra/monitoring/ that `deploy.sh --monitoring` uses too:
# log-based metrics on the function's log fields, alert policies, and a dashboard. The files are
# Cloud Monitoring's own REST JSON with ${...} placeholders, rendered here by templatefile().

locals {
  monitoring_dir = "${path.module}/../monitoring"
  monitoring_vars = {
    webhook_service       = var.function_name
    sweep_service         = var.sweep_function_name
    notification_channels = jsonencode([for channel in google_monitoring_notification_channel.email : channel.id])
    scheduled_share       = var.scheduled_alert_share
    error_share           = var.error_alert_share
  }

  metric_names = var.enable_monitoring ? toset([for f in fileset("${local.monitoring_dir}/metrics", "*.json") : trimsuffix(f, ".json")]) : toset([])
  metrics = {
    for name in local.metric_names :
    name => jsondecode(templatefile("${local.monitoring_dir}/metrics/${name}.json", local.monitoring_vars))
  }
  # sweeper_*.json watch the sweeper and its Cloud Scheduler job: none with memory:// (no sweeper).
  policy_names = var.enable_monitoring ? toset([
    for f in fileset("${local.monitoring_dir}/policies", "*.json") : trimsuffix(f, ".json")
    if local.deploy_sweeper || !startswith(f, "sweeper_")
  ]) : toset([])
  policies = {
    for name in local.policy_names :
    name => jsondecode(templatefile("${local.monitoring_dir}/policies/${name}.json", local.monitoring_vars))
  }
}

resource "google_monitoring_notification_channel" "email" {
  for_each = var.enable_monitoring ? toset(var.alert_emails) : toset([])

  project      = var.project_id
  display_name = "formcall-webhook: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }

  depends_on = [google_project_service.apis]
}

resource "google_logging_metric" "formcall" {
  for_each = local.metric_names

  project          = var.project_id
  name             = local.metrics[each.key].name
  description      = local.metrics[each.key].description
  filter           = local.metrics[each.key].filter
  value_extractor  = try(local.metrics[each.key].valueExtractor, null)
  label_extractors = local.metrics[each.key].labelExtractors

  metric_descriptor {
    metric_kind  = local.metrics[each.key].metricDescriptor.metricKind
    value_type   = local.metrics[each.key].metricDescriptor.valueType
    unit         = local.metrics[each.key].metricDescriptor.unit
    display_name = local.metrics[each.key].metricDescriptor.displayName

    dynamic "labels" {
      for_each = local.metrics[each.key].metricDescriptor.labels
      content {
        key         = labels.value.key
        value_type  = labels.value.valueType
        description = labels.value.description
      }
    }
  }

  dynamic "bucket_options" {
    for_each = try([local.metrics[each.key].bucketOptions.exponentialBuckets], [])
    content {
      exponential_buckets {
        num_finite_buckets = bucket_options.value.numFiniteBuckets
        growth_factor      = bucket_options.value.growthFactor
        scale              = bucket_options.value.scale
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_alert_policy" "formcall" {
  for_each = local.policy_names

  project               = var.project_id
  display_name          = local.policies[each.key].displayName
  combiner              = local.policies[each.key].combiner
  severity              = local.policies[each.key].severity
  notification_channels = local.policies[each.key].notificationChannels

  documentation {
    content   = local.policies[each.key].documentation.content
    mime_type = local.policies[each.key].documentation.mimeType
  }

  alert_strategy {
    auto_close = local.policies[each.key].alertStrategy.autoClose
  }

  dynamic "conditions" {
    for_each = local.policies[each.key].conditions
    content {
      display_name = conditions.value.displayName

      dynamic "condition_threshold" {
        for_each = try([conditions.value.conditionThreshold], [])
        content {
          filter             = condition_threshold.value.filter
          denominator_filter = try(condition_threshold.value.denominatorFilter, null)
          comparison         = condition_threshold.value.comparison
          threshold_value    = condition_threshold.value.thresholdValue
          duration           = condition_threshold.value.duration

          trigger {
            count = condition_threshold.value.trigger.count
          }

          dynamic "aggregations" {
            for_each = condition_threshold.value.aggregations
            content {
              alignment_period     = aggregations.value.alignmentPeriod
              per_series_aligner   = aggregations.value.perSeriesAligner
              cross_series_reducer = aggregations.value.crossSeriesReducer
            }
          }

          dynamic "denominator_aggregations" {
            for_each = try(condition_threshold.value.denominatorAggregations, [])
            content {
              alignment_period     = denominator_aggregations.value.alignmentPeriod
              per_series_aligner   = denominator_aggregations.value.perSeriesAligner
              cross_series_reducer = denominator_aggregations.value.crossSeriesReducer
            }
          }
        }
      }

      # No data for the duration (no sweep line for 5 minutes).
      dynamic "condition_absent" {
        for_each = try([conditions.value.conditionAbsent], [])
        content {
          filter   = condition_absent.value.filter
          duration = condition_absent.value.duration

          trigger {
            count = condition_absent.value.trigger.count
          }

          dynamic "aggregations" {
            for_each = condition_absent.value.aggregations
            content {
              alignment_period     = aggregations.value.alignmentPeriod
              per_series_aligner   = aggregations.value.perSeriesAligner
              cross_series_reducer = aggregations.value.crossSeriesReducer
            }
          }
        }
      }
    }
  }

  # A policy on a log-based metric is refused until the metric exists.
  depends_on = [google_logging_metric.formcall]
}

resource "google_monitoring_dashboard" "formcall" {
  count = var.enable_monitoring ? 1 : 0

  project        = var.project_id
  dashboard_json = templatefile("${local.monitoring_dir}/dashboard.json", local.monitoring_vars)

  depends_on = [google_logging_metric.formcall]
}

# Alerts that notify no one are easy to miss: plan and apply warn until alert_emails names someone.
check "alert_recipients" {
  assert {
    condition     = !var.enable_monitoring || length(var.alert_emails) > 0
    error_message = "enable_monitoring is true but alert_emails is empty: the alert policies exist and notify no one. Set alert_emails (e.g. [\"ops@example.com\"])."
  }
}
