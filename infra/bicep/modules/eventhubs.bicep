// Event Hubs: the buffer between the collector and the capture function. Local (SAS) auth is off,
// so only Entra ID principals with a data role can send or receive.

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the Event Hubs namespace (6-50 characters, globally unique).')
@minLength(6)
@maxLength(50)
param name string

@description('Event Hubs tier. Basic is not offered: it allows a single consumer group.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string

@description('Throughput units (Standard: 1 TU = 1 MB/s or 1000 events/s in, 2 MB/s out) or processing units (Premium).')
@minValue(1)
@maxValue(40)
param capacity int

@description('Upper bound for auto-inflate on Standard; a value at or below capacity turns auto-inflate off.')
@minValue(0)
@maxValue(40)
param maximumThroughputUnits int

@description('Name of the hub the collector sends to.')
param hubName string

@description('Partitions of the hub: the ceiling on parallel capture instances. Fixed after creation on Standard.')
@minValue(1)
@maxValue(32)
param partitionCount int

@description('Hours an event stays readable in the hub (Standard: at most 168).')
@minValue(1)
@maxValue(168)
param retentionHours int

@description('Consumer groups on the hub: one per independent reader.')
param consumerGroups array

@description('Resource ID of the Log Analytics workspace that receives the diagnostic logs.')
param workspaceId string

var autoInflate = skuName == 'Standard' && maximumThroughputUnits > capacity

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
    capacity: capacity
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: autoInflate
    maximumThroughputUnits: autoInflate ? maximumThroughputUnits : 0
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: hubName
  properties: {
    partitionCount: partitionCount
    retentionDescription: {
      cleanupPolicy: 'Delete'
      retentionTimeInHours: retentionHours
    }
  }
}

resource groups 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = [
  for group in consumerGroups: {
    parent: hub
    name: group
  }
]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: namespace
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'OperationalLogs'
        enabled: true
      }
      {
        category: 'AutoScaleLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output namespaceName string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output hubName string = hub.name
