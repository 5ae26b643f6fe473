// The data lake: an ADLS Gen2 (hierarchical namespace) account with the lake filesystem and the state
// table (partition bookkeeping). The salts live in salts.bicep's account: this one keeps soft delete.
// A lifecycle policy expires rejected/ and failed/ events, which exist for inspection and replay, not forever,
// and, when eventRetentionDays is set, events/ and (kept past the hub's retention) the firehose's cut
// records (workers/sinks/firehose/durable.py).

@description('Azure region of the resources.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the storage account (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Replication of the lake account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string

@description('Filesystem (container) that holds events/, rejected/ and failed/.')
param lakeFilesystemName string

@description('Table that holds the capture state.')
param stateTableName string

@description('Days after which blobs under rejected/ are deleted.')
@minValue(1)
param rejectedRetentionDays int

@description('Days after which blobs under failed/ are deleted.')
@minValue(1)
param failedRetentionDays int

@description('Days after which blobs under events/ are deleted; 0 keeps them for good.')
@minValue(0)
param eventRetentionDays int

@description('Days after which the firehose\'s cut records are deleted, when events/ expires: longer than the hub keeps messages.')
@minValue(0)
param cutRetentionDays int

@description('Days a deleted blob or container stays recoverable. Destroyed salts stay recoverable this long too.')
@minValue(1)
@maxValue(365)
param softDeleteDays int

@description('Resource ID of the Log Analytics workspace that receives the diagnostic logs.')
param workspaceId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration and the analysts' engines reach the lake over its public endpoint; shared keys are off, so only Entra ID principals with a data role get in
  // checkov:skip=CKV_AZURE_59: the app (no VNet integration) needs the public endpoint, as for CKV_AZURE_35; a private endpoint needs a VNet-integrated app and private DNS, beyond this template
  // checkov:skip=CKV_AZURE_206: replication is the lakeSku parameter (default Standard_ZRS, Standard_GZRS allowed), which checkov cannot resolve in a module
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    isHnsEnabled: true
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
  }
}

resource lakeContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: lakeFilesystemName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource stateTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: stateTableName
}

@description('Table of the live metrics (workers/sinks/metrics/store.py); HUBCAP_METRICS_TABLE names it.')
param metricsTableName string = 'hubcapmetrics'

resource metricsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: metricsTableName
}

@description('Table of the branded-link registry (workers/links/registry.py); HUBCAP_LINKS_TABLE names it.')
param linksTableName string = 'hubcaplinks'

resource linksTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: linksTableName
}

@description('Container of the clicks the hub has not taken yet (workers/links/spool.py); HUBCAP_LINKS_SPOOL_CONTAINER names it.')
param linksSpoolContainerName string = 'linkspool'

resource linksSpoolContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: linksSpoolContainerName
  properties: {
    publicAccess: 'None'
  }
}

// A cut record names where the firehose cut batches of hub messages it sent. It is read again for
// those messages only: when the hub redelivers them (so it outlives the hub's retention) or when a
// replay re-sends their events from the hub or from events/ (so it may go once events/ does).
var eventRules = eventRetentionDays > 0 ? [
  {
    name: 'expire-events'
    enabled: true
    type: 'Lifecycle'
    definition: {
      filters: {
        blobTypes: [
          'blockBlob'
        ]
        prefixMatch: [
          '${lakeFilesystemName}/events/'
        ]
      }
      actions: {
        baseBlob: {
          delete: {
            daysAfterModificationGreaterThan: eventRetentionDays
          }
        }
      }
    }
  }
  {
    name: 'expire-cuts'
    enabled: true
    type: 'Lifecycle'
    definition: {
      filters: {
        blobTypes: [
          'blockBlob'
        ]
        prefixMatch: [
          '${lakeFilesystemName}/firehose/v1/cuts/'
        ]
      }
      actions: {
        baseBlob: {
          delete: {
            daysAfterModificationGreaterThan: cutRetentionDays
          }
        }
      }
    }
  }
] : []

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: concat([
        {
          name: 'expire-rejected'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${lakeFilesystemName}/rejected/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: rejectedRetentionDays
                }
              }
            }
          }
        }
        {
          name: 'expire-failed'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${lakeFilesystemName}/failed/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: failedRetentionDays
                }
              }
            }
          }
        }
      ], eventRules)
    }
  }
}

// Writes and deletes, not reads: one write per captured batch is cheap to log, while reads by
// analysts' engines would dominate the log volume.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output dfsEndpoint string = account.properties.primaryEndpoints.dfs
