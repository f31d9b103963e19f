// Lapis' own definitions of the INDIGO-DataCloud custom types (tosca.*.indigo.*), written to be
// compatible with INDIGO's public custom types file: the same type names, derivations,
// capabilities, requirements and property names, so real INDIGO templates parse. Lifecycle
// implementations (INDIGO's Ansible roles) are not part of Lapis: the orchestrator deploys
// compute and container nodes itself.
export const indigoTypes = `
tosca_definitions_version: tosca_simple_yaml_1_0
data_types:
  tosca.datatypes.indigo.User:
    derived_from: tosca.datatypes.Root
    properties:
      os_user_name: { type: string, required: false }
      os_user_guid: { type: integer, required: false }
      os_user_add_to_sudoers: { type: boolean, required: false }
      os_user_ssh_public_key: { type: string, required: false }
  tosca.datatypes.indigo.AnsibleTask:
    derived_from: tosca.datatypes.Root
    properties:
      state: { type: string, required: false }
      output: { type: string, required: false }
  tosca.datatypes.indigo.CtxtTask:
    derived_from: tosca.datatypes.Root
    properties:
      tasks: { type: map, required: false, entry_schema: { type: tosca.datatypes.indigo.AnsibleTask } }
  tosca.datatypes.indigo.network.PortSpec:
    derived_from: tosca.datatypes.network.PortSpec
    properties:
      remote_cidr: { type: string, required: false }

capability_types:
  tosca.capabilities.indigo.OperatingSystem:
    derived_from: tosca.capabilities.OperatingSystem
    properties:
      gpu_driver: { type: boolean, required: false }
      cuda_support: { type: boolean, required: false }
      cuda_min_version: { type: string, required: false }
      cuDNN_version: { type: string, required: false }
      image: { type: string, required: false }
      credential: { type: tosca.datatypes.Credential, required: false }
  tosca.capabilities.indigo.Scalable:
    derived_from: tosca.capabilities.Scalable
    properties:
      min_instances: { type: integer, default: 1, required: false }
      max_instances: { type: integer, default: 1, required: false }
      count: { type: integer, default: 1, required: false }
      removal_list: { type: list, required: false, entry_schema: { type: string } }
  tosca.capabilities.indigo.Container:
    derived_from: tosca.capabilities.Container
    properties:
      preemtible_instance: { type: boolean, required: false }
      instance_type: { type: string, required: false }
      num_gpus: { type: integer, required: false }
      gpu_vendor: { type: string, required: false }
      gpu_model: { type: string, required: false }
      infiniband_support: { type: boolean, required: false }
      sgx: { type: boolean, required: false }
      sgx_epc_size: { type: scalar-unit.size, required: false }
  tosca.capabilities.indigo.LRMS:
    derived_from: tosca.capabilities.Container
    properties:
      type: { type: string, required: true, constraints: [ { valid_values: [ local, torque, slurm, sge, condor, mesos, kubernetes ] } ] }
  tosca.capabilities.indigo.LRMS.Torque:
    derived_from: tosca.capabilities.indigo.LRMS
    properties: { type: { type: string, required: true, default: torque, constraints: [ { equal: torque } ] } }
  tosca.capabilities.indigo.LRMS.Slurm:
    derived_from: tosca.capabilities.indigo.LRMS
    properties: { type: { type: string, required: true, default: slurm, constraints: [ { equal: slurm } ] } }
  tosca.capabilities.indigo.LRMS.Kubernetes:
    derived_from: tosca.capabilities.indigo.LRMS
    properties: { type: { type: string, required: true, default: kubernetes, constraints: [ { equal: kubernetes } ] } }
  tosca.capabilities.indigo.LRMS.Local:
    derived_from: tosca.capabilities.indigo.LRMS
    properties: { type: { type: string, required: true, default: local, constraints: [ { equal: local } ] } }
  tosca.capabilities.indigo.LRMS.Mesos:
    derived_from: tosca.capabilities.indigo.LRMS
    properties: { type: { type: string, required: true, default: mesos, constraints: [ { equal: mesos } ] } }
  tosca.capabilities.indigo.MesosMaster: { derived_from: tosca.capabilities.Container }
  tosca.capabilities.indigo.MesosSlave: { derived_from: tosca.capabilities.Container }
  tosca.capabilities.indigo.Container.Docker:
    derived_from: tosca.capabilities.Container.Docker
    properties:
      num_cpus: { type: float, required: false, constraints: [ { greater_or_equal: 0.0 } ] }
      num_gpus: { type: integer, required: false }
  tosca.capabilities.indigo.Endpoint:
    derived_from: tosca.capabilities.Endpoint
    properties:
      dns_name: { type: string, required: false }
      additional_dns_names: { type: list, required: false, entry_schema: { type: string } }
      private_ip: { type: boolean, required: false, default: true }
      ports: { type: map, required: false, constraints: [ { min_length: 1 } ], entry_schema: { type: tosca.datatypes.indigo.network.PortSpec } }
      additional_ip: { type: string, required: false }
    attributes:
      credential: { type: list, entry_schema: { type: tosca.datatypes.Credential } }
  tosca.capabilities.indigo.Container.Application.Docker.Chronos: { derived_from: tosca.capabilities.Root }

artifact_types:
  tosca.artifacts.Implementation.YAML: { derived_from: tosca.artifacts.Implementation, mime_type: text/yaml, file_ext: [ yaml, yml ] }
  tosca.artifacts.AnsibleGalaxy.role: { derived_from: tosca.artifacts.Root }
  tosca.artifacts.Deployment.Image.Container.Docker: { derived_from: tosca.artifacts.Deployment.Image }

relationship_types:
  tosca.relationships.indigo.Manages: { derived_from: tosca.relationships.Root }
  tosca.relationships.indigo.AttachesTo:
    derived_from: tosca.relationships.AttachesTo
    properties:
      fs_type: { type: string, required: false }
  tosca.relationships.indigo.GlusterFS.AttachesTo: { derived_from: tosca.relationships.AttachesTo }
  tosca.relationships.indigo.OneDataStorage.AttachesTo: { derived_from: tosca.relationships.AttachesTo }

node_types:
  tosca.nodes.indigo.Compute:
    derived_from: tosca.nodes.Compute
    attributes:
      private_address: { type: list, entry_schema: { type: string } }
      public_address: { type: list, entry_schema: { type: string } }
      ctxt_log: { type: string }
      ansible_output: { type: map, entry_schema: { type: tosca.datatypes.indigo.CtxtTask } }
    properties:
      os_users: { type: list, required: false, default: [], entry_schema: { type: tosca.datatypes.indigo.User } }
      tags: { type: map, required: false, default: {}, entry_schema: { type: string } }
      instance_name: { type: string, required: false, default: '' }
    capabilities:
      scalable: { type: tosca.capabilities.indigo.Scalable }
      os: { type: tosca.capabilities.indigo.OperatingSystem }
      endpoint: { type: tosca.capabilities.indigo.Endpoint }
      host: { type: tosca.capabilities.indigo.Container, valid_source_types: [ tosca.nodes.SoftwareComponent ] }
  tosca.nodes.indigo.BlockStorage:
    derived_from: tosca.nodes.BlockStorage
    properties:
      type: { type: string, required: false }
  tosca.nodes.indigo.network.Network:
    derived_from: tosca.nodes.network.Network
    properties:
      proxy_host: { type: string, required: false }
      proxy_credential: { type: tosca.datatypes.Credential, required: false }
  tosca.nodes.indigo.network.Port:
    derived_from: tosca.nodes.network.Port
    properties:
      dns_name: { type: string, required: false }
      additional_dns_names: { type: list, required: false, entry_schema: { type: string } }
      additional_ip: { type: string, required: false }
  tosca.nodes.indigo.Container.Runtime.Docker:
    derived_from: tosca.nodes.Root
    capabilities:
      host: { type: tosca.capabilities.indigo.Container.Docker }
      scalable: { type: tosca.capabilities.Scalable }
  tosca.nodes.indigo.Container.Application.Docker:
    derived_from: tosca.nodes.Container.Application.Docker
    properties:
      command: { type: string, required: false }
      uris: { type: list, required: false, entry_schema: { type: string } }
      environment_variables: { type: map, required: false, entry_schema: { type: string } }
      secrets: { type: map, required: false, entry_schema: { type: string } }
      constraints: { type: list, required: false, entry_schema: { type: list, entry_schema: { type: string } } }
      labels: { type: map, required: false, entry_schema: { type: string } }
      privileged: { type: boolean, required: false, default: false }
      force_pull_image: { type: boolean, required: false, default: false }
  tosca.nodes.indigo.Container.Application.Docker.Chronos:
    derived_from: tosca.nodes.indigo.Container.Application.Docker
  tosca.nodes.indigo.Container.Application.Docker.Marathon:
    derived_from: tosca.nodes.indigo.Container.Application.Docker
  tosca.nodes.indigo.LRMS.WorkerNode:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      front_end_ip: { type: string, required: true }
      hybrid: { type: boolean, required: false, default: false }
      public_front_end_ip: { type: string, required: false, default: '' }
    capabilities:
      wn: { type: tosca.capabilities.Scalable, valid_source_types: [ tosca.nodes.indigo.ElasticCluster ] }
    requirements:
      - host: { capability: tosca.capabilities.Container, node: tosca.nodes.Compute, relationship: tosca.relationships.HostedOn }
  tosca.nodes.indigo.LRMS.WorkerNode.Torque: { derived_from: tosca.nodes.indigo.LRMS.WorkerNode }
  tosca.nodes.indigo.LRMS.WorkerNode.Slurm: { derived_from: tosca.nodes.indigo.LRMS.WorkerNode }
  tosca.nodes.indigo.LRMS.WorkerNode.SlurmGalaxy: { derived_from: tosca.nodes.indigo.LRMS.WorkerNode.Slurm }
  tosca.nodes.indigo.LRMS.WorkerNode.Mesos: { derived_from: tosca.nodes.indigo.LRMS.WorkerNode }
  tosca.nodes.indigo.LRMS.WorkerNode.Kubernetes:
    derived_from: tosca.nodes.indigo.LRMS.WorkerNode
    properties:
      version: { type: string, required: false, default: '1.19.4' }
  tosca.nodes.indigo.LRMS.FrontEnd:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      wn_ips: { type: list, required: false, default: [], entry_schema: { type: string } }
      hybrid: { type: boolean, required: false, default: false }
    capabilities:
      lrms: { type: tosca.capabilities.indigo.LRMS }
    requirements:
      - host: { capability: tosca.capabilities.Container, node: tosca.nodes.Compute, relationship: tosca.relationships.HostedOn }
  tosca.nodes.indigo.LRMS.FrontEnd.Torque:
    derived_from: tosca.nodes.indigo.LRMS.FrontEnd
    capabilities: { lrms: { type: tosca.capabilities.indigo.LRMS.Torque } }
  tosca.nodes.indigo.LRMS.FrontEnd.Slurm:
    derived_from: tosca.nodes.indigo.LRMS.FrontEnd
    properties:
      wn_num: { type: integer, required: false, default: -1 }
    capabilities: { lrms: { type: tosca.capabilities.indigo.LRMS.Slurm } }
  tosca.nodes.indigo.LRMS.FrontEnd.SlurmGalaxy:
    derived_from: tosca.nodes.indigo.LRMS.FrontEnd.Slurm
  tosca.nodes.indigo.LRMS.FrontEnd.Local:
    derived_from: tosca.nodes.indigo.LRMS.FrontEnd
    capabilities: { lrms: { type: tosca.capabilities.indigo.LRMS.Local } }
  tosca.nodes.indigo.LRMS.FrontEnd.Mesos:
    derived_from: tosca.nodes.indigo.LRMS.FrontEnd
    capabilities:
      lrms: { type: tosca.capabilities.indigo.LRMS.Mesos }
      host: { type: tosca.capabilities.indigo.MesosMaster }
  tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes:
    derived_from: tosca.nodes.indigo.LRMS.FrontEnd
    properties:
      admin_username: { type: string, required: false, default: kubeuser }
      admin_token: { type: string, required: false, default: some_insecure_token }
      install_kubeapps: { type: boolean, required: false, default: false }
      install_metrics: { type: boolean, required: false, default: true }
      install_nfs_client: { type: boolean, required: false, default: true }
      install_ingress: { type: boolean, required: false, default: true }
      version: { type: string, required: false, default: '1.19.4' }
    capabilities:
      lrms: { type: tosca.capabilities.indigo.LRMS.Kubernetes }
      host: { type: tosca.capabilities.Container, valid_source_types: [ tosca.nodes.indigo.Helm.Chart ] }
  tosca.nodes.indigo.ElasticCluster:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      secret_token: { type: string, required: false, default: not_very_secret_token }
      deployment_id: { type: string, required: false, default: '' }
      orchestrator_url: { type: string, required: false }
      iam_access_token: { type: string, required: false }
      iam_clues_client_id: { type: string, required: false }
      iam_clues_client_secret: { type: string, required: false }
      marathon_credentials: { type: tosca.datatypes.Credential, required: false }
      chronos_credentials: { type: tosca.datatypes.Credential, required: false }
      mesos_credentials: { type: tosca.datatypes.Credential, required: false }
      hybrid: { type: boolean, required: false, default: false }
      powermanager_plugin: { type: string, required: false, default: indigo_orchestrator }
      im_auth: { type: string, required: false, default: '' }
    requirements:
      - wn: { capability: tosca.capabilities.Scalable, node: tosca.nodes.indigo.LRMS.WorkerNode, relationship: tosca.relationships.indigo.Manages }
      - lrms: { capability: tosca.capabilities.indigo.LRMS, node: tosca.nodes.indigo.LRMS.FrontEnd, relationship: tosca.relationships.HostedOn }
  tosca.nodes.indigo.GalaxyPortal:
    derived_from: tosca.nodes.WebServer
    properties:
      admin_email: { type: string, required: false, default: admin@admin.com }
      admin_api_key: { type: string, required: false, default: not_very_secret_api_key }
      user: { type: string, required: false, default: galaxy }
      install_path: { type: string, required: false, default: /home/galaxy/galaxy }
      export_dir: { type: string, required: false, default: /export }
      version: { type: string, required: false, default: master }
      instance_description: { type: string, default: INDIGO Galaxy test }
      instance_key_pub: { type: string, default: your_ssh_public_key }
      flavor: { type: string, required: false, default: galaxy-no-tools }
      reference_data: { type: boolean, required: false, default: true }
    requirements:
      - lrms: { capability: tosca.capabilities.indigo.LRMS, node: tosca.nodes.indigo.LRMS.FrontEnd, relationship: tosca.relationships.HostedOn }
  tosca.nodes.indigo.GalaxyWN:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      front_end_ip: { type: string, required: true }
      export_dir: { type: string, required: true, default: /export }
    requirements:
      - host: { capability: tosca.capabilities.Container, node: tosca.nodes.Compute, relationship: tosca.relationships.HostedOn }
  tosca.nodes.indigo.JupyterHub:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      spawner: { type: string, required: false, default: local, constraints: [ { valid_values: [ local, kubernetes ] } ] }
      authenticator: { type: string, required: false, default: local, constraints: [ { valid_values: [ local, dummy ] } ] }
  tosca.nodes.indigo.Helm.Chart:
    derived_from: tosca.nodes.SoftwareComponent
    properties:
      repository_name: { type: string, required: true }
      repository_url: { type: string, required: true }
      name: { type: string, required: true }
      version: { type: string, required: false, default: latest }
      values: { type: map, required: false, default: {}, entry_schema: { type: string } }
    requirements:
      - host: { capability: tosca.capabilities.Container, node: tosca.nodes.indigo.LRMS.FrontEnd.Kubernetes, relationship: tosca.relationships.HostedOn }
  tosca.nodes.indigo.Kubernetes.HelmChart:
    derived_from: tosca.nodes.Root
    attributes:
      worker_nodes_ips: { type: list, entry_schema: { type: string } }
      service_ports: { type: map, entry_schema: { type: tosca.datatypes.network.PortSpec } }
    properties:
      repository: { type: string, required: true }
      name: { type: string, required: true }
      version: { type: string, required: true }
      values: { type: string, required: false, default: '' }

policy_types:
  tosca.policies.indigo.Placement:
    derived_from: tosca.policies.Placement
    properties:
      cloud_id: { type: string, required: true }
      availability_zone: { type: string, required: false }
  tosca.policies.indigo.SlaPlacement:
    derived_from: tosca.policies.Placement
    properties:
      sla_id: { type: string, required: true }
  tosca.policies.indigo.CredentialsAwareSlaPlacement:
    derived_from: tosca.policies.indigo.SlaPlacement
    properties:
      username: { type: string, required: true }
      password: { type: string, required: true }
      subscription_id: { type: string, required: false }
`;

/** URLs of INDIGO's public custom types file, which Lapis' built-in definitions stand in for. */
export const indigoTypesUrl = /^https?:\/\/raw\.githubusercontent\.com\/indigo-dc\/tosca-types\/[^/]+\/custom_types\.yaml$/;
